"""Models of the customers app; see the app docstring and docs/architecture.md."""
