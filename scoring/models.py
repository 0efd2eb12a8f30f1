"""Models of the scoring app; see the app docstring and docs/architecture.md."""
