"""The membership's key becomes its one index, in two steps that keep the table usable.

This migration (no transaction: both statements are CONCURRENTLY, so reads and writes of
the table go on while they run) builds the unique index ``membership_key`` on ``(tenant,
segment, customer)`` that 0013 turns into the primary key, and drops the ``(tenant,
customer)`` index: a customer's memberships are now read segment by segment through the
key (``marketing.segments.memberships_of``). The build reads the whole table once (about a
second per million memberships) and locks nothing but schema changes; the drop waits for
the transactions that use the index, then takes a moment. A build that failed leaves an
invalid index: it is dropped and built again when the migration runs again.
"""

from django.db import migrations

TABLE = "marketing_segmentmembership"


def build_key(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)",
            ["membership_key"],
        )
        row = cursor.fetchone()
        if row is not None and row[0]:
            return
        if row is not None:  # left invalid by an interrupted build
            cursor.execute("DROP INDEX CONCURRENTLY IF EXISTS membership_key")
        cursor.execute(
            f'CREATE UNIQUE INDEX CONCURRENTLY membership_key ON "{TABLE}" '
            "(tenant_id, segment_id, customer_id)"
        )


def drop_key(apps, schema_editor) -> None:
    schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS membership_key")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("marketing", "0012_profile_change_log"),
    ]

    operations = [
        migrations.RunPython(build_key, drop_key),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "DROP INDEX CONCURRENTLY IF EXISTS membership_customer_idx",
                    f'CREATE INDEX CONCURRENTLY IF NOT EXISTS membership_customer_idx ON "{TABLE}" '
                    "(tenant_id, customer_id)",
                ),
            ],
            state_operations=[
                migrations.RemoveIndex(
                    model_name="segmentmembership",
                    name="membership_customer_idx",
                ),
            ],
        ),
    ]
