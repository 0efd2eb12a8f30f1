from django.db import migrations

# The statement trigger customers_profile_updated joins its two transition tables
# (new_profiles, old_profiles) by id. PL/pgSQL plans that parameterless query once per session
# and keeps the plan: when the session's first UPDATE of profiles touched no row or a few
# (a guarded UPDATE of a new tenant's existing profiles, say), the kept plan is a nested loop,
# and a later UPDATE of 60,000 profiles in the same session compared every new row with every
# old one (the MCA v1 import's lifetime-value UPDATE ran for more than ten minutes at 62,500
# member records). Without nested loops the trigger's join is a hash join whatever the first
# call's size (44 ms for 60,000 profiles after two empty UPDATEs). Only this function: the
# others read one transition table against an indexed table. ALTER FUNCTION takes no lock on
# the profile table.
FORWARD = "ALTER FUNCTION customers_profile_updated() SET enable_nestloop = off;"
REVERSE = "ALTER FUNCTION customers_profile_updated() RESET enable_nestloop;"


class Migration(migrations.Migration):
    dependencies = [("customers", "0009_profile_update_index")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
