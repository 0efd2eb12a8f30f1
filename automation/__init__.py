"""Journeys: multi-step automation (phase 5). The modules (see docs/journeys.md):

- ``models.py``: Journey (trigger, entry filter, re-entry, goal, exits, holdout), its
  versions and steps, Enrollment (current step, due time), EnrollmentStep (one history row
  per enrollment per step visit, unique).
- ``journeys.py``: journey and step services (create, update as a new version, validate the
  graph, activate, pause, resume, archive) and reads.
- ``triggers.py``: event triggers, evaluated set-wise per ingested batch through the event
  subscriber registry (registered in ``apps.py``); segment entry and exit; daily date
  triggers; manual, segment and CSV enrollment.
- ``engine.py``: the every-minute sweep that claims due enrollments (``SKIP LOCKED``) and
  advances them set-wise; the step executors (SEND through the campaign message pipeline,
  WAIT, CONDITION, SPLIT, UPDATE, TASK, END).
- ``delivery.py``: delivering queued journey messages through the campaign pipeline.
- ``dryrun.py``: the "test with one customer" path (reads only).
- ``analytics.py``: per-journey and per-step figures computed from the history rows.
- ``tasks.py``, ``api/`` as in every app (docs/architecture.md); ``admin.py``: the journey
  editor, the flow drawing, the dry run.
"""
