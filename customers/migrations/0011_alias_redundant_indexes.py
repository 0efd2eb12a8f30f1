from django.db import migrations, models

# The alias table kept five indexes; two duplicated others: the tenant foreign key's own
# index (the unique (tenant, kind, value) index leads with the tenant) and (tenant, profile)
# (the profile foreign key's index finds a profile's aliases: a profile's id is unique across
# tenants). Each cost every alias insert an index entry: the MCA v1 import's alias INSERT
# took 3.24 / 3.59 s of CPU with them and 2.57 / 2.75 s without, for 238,985 aliases
# (docs/profiles/backfill-import.md). Dropped CONCURRENTLY, so reads and writes go on (no
# transaction: a failed run leaves at most one index dropped and runs again). The reverse
# builds them CONCURRENTLY.
TENANT_INDEX = "customers_identityalias_tenant_id_e0be38ae"
PROFILE_INDEX = "alias_tenant_profile_idx"

# (forward, reverse) for each index.
DROPS = [
    (
        f"DROP INDEX CONCURRENTLY IF EXISTS {TENANT_INDEX}",
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {TENANT_INDEX} ON customers_identityalias "
        "(tenant_id)",
    ),
    (
        f"DROP INDEX CONCURRENTLY IF EXISTS {PROFILE_INDEX}",
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {PROFILE_INDEX} ON customers_identityalias "
        "(tenant_id, profile_id)",
    ),
]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("customers", "0010_profile_updated_trigger_no_nestloop")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="identityalias", name=PROFILE_INDEX),
                migrations.AlterField(
                    model_name="identityalias",
                    name="tenant",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="+",
                        to="crm.tenant",
                    ),
                ),
            ],
            database_operations=[migrations.RunSQL(sql, reverse) for sql, reverse in DROPS],
        ),
    ]
