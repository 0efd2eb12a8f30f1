"""The MCA v1 backfill: legacy exports (ZA and UK) into profiles and history (phase 7). Not
built yet; the module plan it grows into:

- ``models.py``: ImportRun (tenant, region, files with checksums, dry run, status, counters)
  and one outcome row per input row, staged before loading.
- ``mca.py``: streaming readers of the export format (docs/backfill.md,
  shared/design/mca-v1-format.md), row by row with a bounded memory.
- ``transforms.py``: per-region transforms (phones, dates, money, consent, status).
- ``loading.py``: set-wise identity resolution against existing profiles and the load
  (profiles, aliases, activities, consent history), idempotent and resumable.
- ``duplicates.py``: duplicate detection among people without a shared key (suggestions).
- ``reports.py``: reconciliation, the reject file and the JSON report.
- ``management/commands/``: the operator's import command; ``tasks.py`` and ``admin.py``.
"""
