"""Writes of the backfill app: typed, keyword-only, transactional functions."""
