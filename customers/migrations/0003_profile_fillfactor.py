"""Leave room in the profile table's pages, so updates of columns no index covers (the
activity metrics the event pipeline moves on every event) are HOT: no index writes."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("customers", "0002_events_activities_notes")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE customers_customerprofile SET (fillfactor = 85)",
            "ALTER TABLE customers_customerprofile RESET (fillfactor)",
        ),
    ]
