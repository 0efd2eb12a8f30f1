"""Reads of the automation app, always scoped to a tenant."""
