"""Reads of the social app, always scoped to a tenant."""
