"""Helpers of the backfill tests: tenants with the sample exports' clubs, and imports."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from backfill.mca import Export
from backfill.runs import run_import
from tests.factories import ClubFactory, TenantFactory

# The sample exports (ZA and UK, with their faults, and truth.json): a byte-for-byte copy of
# shared/data/mca-v1 (the format's owners keep the original), in the repository so that a
# clean clone anywhere runs these tests; MCA_SAMPLES_DIR points elsewhere.
DATA = Path(
    os.environ.get("MCA_SAMPLES_DIR") or Path(__file__).resolve().parent / "samples" / "mca-v1"
)
TRUTH = json.loads((DATA / "truth.json").read_text())
EXPORTED_AT = datetime(2024, 8, 1, 6, 0, tzinfo=UTC)
REGIONS = {"ZA": ("za", ("RGC", "SVG")), "UK": ("uk", ("SAN", "HGT"))}


def region_tenant(region: str, slug: str | None = None):
    folder, clubs = REGIONS[region]
    tenant = TenantFactory(slug=slug or f"bf-{folder}", **({"uk": True} if region == "UK" else {}))
    for code in clubs:
        ClubFactory(tenant=tenant, name=code)
    return tenant


def do_import(tenant, region: str, path: Path | None = None, **kwargs):
    export = Export(path or DATA / REGIONS[region][0])
    kwargs.setdefault("exported_at", EXPORTED_AT)
    try:
        return run_import(tenant=tenant, export=export, region=region, **kwargs)
    finally:
        export.close()
