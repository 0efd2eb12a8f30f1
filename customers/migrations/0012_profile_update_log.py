"""``customers_profileupdate`` becomes a log: one row per (tenant, updated_at, customer)
that a statement wrote, appended by the statement triggers of migration 0009 (``ON
CONFLICT DO NOTHING``), instead of one row per profile kept by an upsert.

The upsert was a non-HOT update (``updated_at`` is indexed) of a row on a page of its own,
with a new entry in both of the table's indexes, for every profile whose data an event batch
changed: after a checkpoint, 1.7 MB of WAL and 3.6 ms of a batch of 500 events (and 0.8 MB
for its new people). An append lands at the right edge of the one index left, the key
(``updated_at`` grows), which is also the time index ``updated_since`` reads.

A profile's superseded rows stay until the nightly retention step ``profile_updates``
(``customers.retention.profile_updates_prune``): a reader joins the profile table and
compares the profile's own ``updated_at``, so a superseded row can never show a profile
whose data did not change since. A deleted profile's current row is deleted by its key;
older rows of it go with the prune.

Built without blocking writers: the key's index ``CONCURRENTLY`` first (about a second per
million profiles), then one short transaction of catalogue changes (``PRIMARY KEY USING
INDEX``: no build, no scan, the columns are already NOT NULL) under ``lock_timeout``.
"""

from django.db import migrations, models, transaction

TABLE = "customers_profileupdate"

BUILD_KEY = (
    f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS profileupdate_log_key "
    f'ON "{TABLE}" (tenant_id, updated_at, customer_id)'
)
DROP_KEY = "DROP INDEX CONCURRENTLY IF EXISTS profileupdate_log_key"

FUNCTIONS = """
CREATE OR REPLACE FUNCTION customers_profile_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO customers_profileupdate (tenant_id, updated_at, customer_id)
    SELECT tenant_id, updated_at, id FROM inserted_profiles
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION customers_profile_updated() RETURNS trigger LANGUAGE plpgsql
SET enable_nestloop = off AS $$
BEGIN
    INSERT INTO customers_profileupdate (tenant_id, updated_at, customer_id)
    SELECT n.tenant_id, n.updated_at, n.id
    FROM new_profiles n JOIN old_profiles o ON o.id = n.id
    WHERE n.updated_at IS DISTINCT FROM o.updated_at OR n.tenant_id <> o.tenant_id
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION customers_profile_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM customers_profileupdate u USING deleted_profiles d
    WHERE u.tenant_id = d.tenant_id AND u.updated_at = d.updated_at AND u.customer_id = d.id;
    RETURN NULL;
END
$$;
"""

FORWARD = [
    "SET LOCAL lock_timeout = '10s'",
    FUNCTIONS,
    f'ALTER TABLE "{TABLE}" DROP CONSTRAINT "{TABLE}_pkey"',
    f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_pkey" PRIMARY KEY USING INDEX '
    "profileupdate_log_key",
    "DROP INDEX profileupdate_time_idx",
]

# Back to one row per profile (its current updated_at), the upserts of migration 0009.
OLD_FUNCTIONS = """
CREATE OR REPLACE FUNCTION customers_profile_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO customers_profileupdate AS u (tenant_id, customer_id, updated_at)
    SELECT tenant_id, id, updated_at FROM inserted_profiles
    ON CONFLICT (tenant_id, customer_id) DO UPDATE SET updated_at = EXCLUDED.updated_at;
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION customers_profile_updated() RETURNS trigger LANGUAGE plpgsql
SET enable_nestloop = off AS $$
BEGIN
    INSERT INTO customers_profileupdate AS u (tenant_id, customer_id, updated_at)
    SELECT n.tenant_id, n.id, n.updated_at
    FROM new_profiles n JOIN old_profiles o ON o.id = n.id
    WHERE n.updated_at IS DISTINCT FROM o.updated_at OR n.tenant_id <> o.tenant_id
    ON CONFLICT (tenant_id, customer_id) DO UPDATE SET updated_at = EXCLUDED.updated_at;
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION customers_profile_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM customers_profileupdate u USING deleted_profiles d
    WHERE u.tenant_id = d.tenant_id AND u.customer_id = d.id;
    RETURN NULL;
END
$$;
"""

BACKWARD = [
    f'LOCK TABLE "{TABLE}", customers_customerprofile IN SHARE ROW EXCLUSIVE MODE',
    f"""DELETE FROM "{TABLE}" u WHERE NOT EXISTS (
        SELECT 1 FROM customers_customerprofile p
        WHERE p.tenant_id = u.tenant_id AND p.id = u.customer_id AND p.updated_at = u.updated_at)
    """,  # noqa: S608
    f'ALTER TABLE "{TABLE}" DROP CONSTRAINT "{TABLE}_pkey"',
    f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_pkey" PRIMARY KEY (tenant_id, customer_id)',
    f'CREATE INDEX profileupdate_time_idx ON "{TABLE}" (tenant_id, updated_at, customer_id)',
    OLD_FUNCTIONS,
]


def _in_one_transaction(statements):
    def run(apps, schema_editor):
        connection = schema_editor.connection
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    return run


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction; the catalogue changes that
    # follow run in one transaction of their own.
    atomic = False

    dependencies = [
        ("customers", "0011_alias_redundant_indexes"),
    ]

    operations = [
        migrations.RunSQL(BUILD_KEY, DROP_KEY),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunPython(_in_one_transaction(FORWARD), _in_one_transaction(BACKWARD))
            ],
            state_operations=[
                migrations.RemoveIndex(model_name="profileupdate", name="profileupdate_time_idx"),
                migrations.AlterField(
                    model_name="profileupdate",
                    name="pk",
                    field=models.CompositePrimaryKey(
                        "tenant",
                        "updated_at",
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
