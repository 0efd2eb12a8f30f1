from django.db import migrations, models

# The profile table kept thirteen indexes; three cost every new profile an entry that no
# reader needed: the tenant foreign key's own index (five lookup indexes lead with the
# tenant), (tenant, home_club) (the home club foreign key's index finds a club's profiles: a
# club's id is unique across tenants) and merged_into over every row (now only where set:
# merged profiles are few). Inserting 400,000 profiles into a copy of the table took
# 20.6-24.2 s with them and 18.8-19.4 s without (docs/profiles/backfill-import.md, sixth
# pass). Dropped and created CONCURRENTLY, so reads and writes go on (no transaction: a
# failed run leaves at most one step undone and runs again). The reverse restores them.
TABLE = "customers_customerprofile"
TENANT_INDEX = "customers_customerprofile_tenant_id_7e0f4b0f"
CLUB_INDEX = "profile_tenant_club_idx"
MERGED_INDEX = "customers_customerprofile_merged_into_id_4476967c"
MERGED_PARTIAL = "profile_merged_into_idx"

# (forward, reverse) for each step.
STEPS = [
    (
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {MERGED_PARTIAL} ON {TABLE} (merged_into_id) "
        "WHERE merged_into_id IS NOT NULL",
        f"DROP INDEX CONCURRENTLY IF EXISTS {MERGED_PARTIAL}",
    ),
    (
        f"DROP INDEX CONCURRENTLY IF EXISTS {MERGED_INDEX}",
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {MERGED_INDEX} ON {TABLE} (merged_into_id)",
    ),
    (
        f"DROP INDEX CONCURRENTLY IF EXISTS {TENANT_INDEX}",
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {TENANT_INDEX} ON {TABLE} (tenant_id)",
    ),
    (
        f"DROP INDEX CONCURRENTLY IF EXISTS {CLUB_INDEX}",
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {CLUB_INDEX} ON {TABLE} "
        "(tenant_id, home_club_id)",
    ),
]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("crm", "0004_retention_mark"),
        ("customers", "0012_profile_update_log"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="customerprofile", name=CLUB_INDEX),
                migrations.AlterField(
                    model_name="customerprofile",
                    name="merged_into",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=models.deletion.SET_NULL,
                        related_name="+",
                        to="customers.customerprofile",
                    ),
                ),
                migrations.AlterField(
                    model_name="customerprofile",
                    name="tenant",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="+",
                        to="crm.tenant",
                    ),
                ),
                migrations.AddIndex(
                    model_name="customerprofile",
                    index=models.Index(
                        condition=models.Q(("merged_into__isnull", False)),
                        fields=["merged_into"],
                        name=MERGED_PARTIAL,
                    ),
                ),
            ],
            database_operations=[migrations.RunSQL(sql, reverse) for sql, reverse in STEPS],
        ),
    ]
