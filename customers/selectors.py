"""Reads of the customers app, always scoped to a tenant."""
