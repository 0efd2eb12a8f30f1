"""Leaves a quarter of each ``scoring_score`` page free, so the nightly update of a row whose
reasons or engagement changed (churn risk, the one indexed value, unchanged) can stay on its
page as a HOT update, without new index entries (docs/scoring.md, "Cost")."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("scoring", "0001_initial")]

    operations = [
        migrations.RunSQL(
            'ALTER TABLE "scoring_score" SET (fillfactor = 75)',
            'ALTER TABLE "scoring_score" RESET (fillfactor)',
        ),
    ]
