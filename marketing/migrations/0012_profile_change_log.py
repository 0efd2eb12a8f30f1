from django.db import migrations, models

# ProfileChange becomes a log: one row per (transaction, profile) it wrote, keyed by
# (tenant, xid, customer), appended by the same statement trigger (no upsert). The upsert
# of one row per profile was a non-HOT update (xid is indexed) of a row on a page of its
# own, with new entries in both indexes, for every profile of every event batch: after a
# checkpoint, the largest writer of the batch (4.5 MB of WAL of about 15 MB per batch of
# 500 events). An append lands at the right edge of the one index (transaction ids grow).
# The existing rows are valid entries of the log as they are (each profile's last writer).
FORWARD_SQL = """
ALTER TABLE marketing_profilechange DROP CONSTRAINT marketing_profilechange_pkey;
DROP INDEX IF EXISTS profilechange_xid_idx;
ALTER TABLE marketing_profilechange ADD CONSTRAINT marketing_profilechange_pkey
    PRIMARY KEY (tenant_id, xid, customer_id);
CREATE OR REPLACE FUNCTION marketing_profile_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO marketing_profilechange (tenant_id, xid, customer_id)
    SELECT tenant_id, pg_current_xact_id()::text::bigint, id FROM changed_profiles
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
"""
# Back to one row per profile: each profile's last writer.
BACKWARD_SQL = """
DELETE FROM marketing_profilechange c USING marketing_profilechange newer
WHERE newer.tenant_id = c.tenant_id AND newer.customer_id = c.customer_id
  AND newer.xid > c.xid;
ALTER TABLE marketing_profilechange DROP CONSTRAINT marketing_profilechange_pkey;
ALTER TABLE marketing_profilechange ADD CONSTRAINT marketing_profilechange_pkey
    PRIMARY KEY (tenant_id, customer_id);
CREATE INDEX profilechange_xid_idx ON marketing_profilechange (tenant_id, xid);
CREATE OR REPLACE FUNCTION marketing_profile_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    current_xid bigint := pg_current_xact_id()::text::bigint;
BEGIN
    INSERT INTO marketing_profilechange AS c (tenant_id, customer_id, xid)
    SELECT tenant_id, id, current_xid FROM changed_profiles
    ON CONFLICT (tenant_id, customer_id) DO UPDATE SET xid = EXCLUDED.xid
    WHERE c.xid <> EXCLUDED.xid;
    RETURN NULL;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("marketing", "0011_history_index_ascending"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(FORWARD_SQL, BACKWARD_SQL)],
            state_operations=[
                migrations.RemoveIndex(model_name="profilechange", name="profilechange_xid_idx"),
                migrations.AlterField(
                    model_name="profilechange",
                    name="pk",
                    field=models.CompositePrimaryKey(
                        "tenant",
                        "xid",
                        "customer",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
            ],
        ),
    ]
