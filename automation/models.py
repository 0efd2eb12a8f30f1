"""Models of the automation app; see the app docstring and docs/architecture.md."""
