"""benchmarks/report.py: a recorded run's notes stay with it until a new run replaces it."""

import json

from benchmarks import report

META = {
    "date": "2026-12-06 20:00 UTC",
    "cpus": 2,
    "cpu": "Test CPU",
    "memory_gib": 24,
    "python": "3.12",
    "postgres": "PostgreSQL 15",
}


def test_notes_are_rendered_kept_by_a_rerender_and_dropped_by_a_new_run(tmp_path, monkeypatch):
    monkeypatch.setitem(report.RENDERERS, "demo", lambda results: ["## Demo", f"v={results['v']}"])
    report.write(tmp_path, "demo", {"v": 1}, META, notes=["Recorded while other work ran."])
    report.rerender(tmp_path)
    markdown = (tmp_path / "benchmarks.md").read_text()
    assert "v=1\n> Recorded while other work ran." in markdown
    assert json.loads((tmp_path / "benchmarks.json").read_text())["demo"]["notes"] == [
        "Recorded while other work ran."
    ]

    report.write(tmp_path, "demo", {"v": 2}, META)
    markdown = (tmp_path / "benchmarks.md").read_text()
    assert "v=2" in markdown and "other work" not in markdown
    assert "notes" not in json.loads((tmp_path / "benchmarks.json").read_text())["demo"]


def test_a_run_that_timed_the_reference_work_shows_it_beside_the_machine(tmp_path, monkeypatch):
    monkeypatch.setitem(report.RENDERERS, "demo", lambda results: ["## Demo"])
    reference = {"python_ms": 41.5, "postgres_ms": 63.2}
    report.write(tmp_path, "demo", {}, {**META, "reference": reference})
    line = next(
        line for line in (tmp_path / "benchmarks.md").read_text().splitlines() if "demo" in line
    )
    assert line.endswith(
        "PostgreSQL 15; reference work (lower is faster): Python 41.5 ms, PostgreSQL 63.2 ms._"
    )

    report.write(tmp_path, "demo", {}, META)  # a run recorded before the reference existed
    line = next(
        line for line in (tmp_path / "benchmarks.md").read_text().splitlines() if "demo" in line
    )
    assert line.endswith("PostgreSQL 15._")
