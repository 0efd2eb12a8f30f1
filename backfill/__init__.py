"""The MCA v1 backfill: legacy exports (ZA and UK) into profiles and history (phase 7).
See docs/backfill.md. Modules:

- ``models.py``: ImportRun (tenant, region, files with checksums, dry run, status, counters)
  and ImportRow, the staging table: one row per input row, with its outcome.
- ``mca.py``: streaming readers of the export format, row by row with a bounded memory.
- ``transforms.py``: per-region transforms (phones, dates, money, IDs, consent, status).
- ``runs.py``: starting, resuming, staging (COPY) and finishing a run.
- ``loading.py``: set-wise identity resolution and the load (profiles, aliases, consent,
  suppressions, activities, lifetime value, metrics, suggestions), idempotent.
- ``duplicates.py``: duplicate detection among people without a shared key (suggestions).
- ``reports.py``: reconciliation, the reject files and the JSON report.
- ``management/commands/import_mca_v1.py``, ``tasks.py`` and ``admin.py``.
"""
