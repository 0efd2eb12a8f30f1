"""Models of the backfill app; see the app docstring and docs/architecture.md."""
