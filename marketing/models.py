"""Models of the marketing app; see the app docstring and docs/architecture.md."""
