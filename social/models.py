"""Models of the social app; see the app docstring and docs/architecture.md."""
