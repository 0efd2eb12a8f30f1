"""Reads of the backfill app, always scoped to a tenant."""
