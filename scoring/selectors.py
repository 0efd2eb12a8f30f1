"""Reads of the scoring app, always scoped to a tenant."""
