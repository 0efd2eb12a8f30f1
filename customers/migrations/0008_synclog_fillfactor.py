"""Free space on the sync log's pages (fillfactor 60), so that counting a batch's first
attempt (``attempts = 1``, committed before the work, right after the rows were written)
is a HOT update: it changes no indexed column, but on a full page PostgreSQL had to put
the new row version on another page and add it to each of the table's six indexes.

Only pages written from now on keep the free space: the sync log's new rows, which are
the ones the pipeline updates.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("customers", "0007_synclog_profile_index")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE customers_synclogentry SET (fillfactor = 60)",
            "ALTER TABLE customers_synclogentry RESET (fillfactor)",
        )
    ]
