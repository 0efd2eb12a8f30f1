"""Social connections (OAuth), posts, per-platform publishers and event promotion."""
