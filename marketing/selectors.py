"""Reads of the marketing app, always scoped to a tenant."""
