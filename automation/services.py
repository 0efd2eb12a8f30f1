"""Writes of the automation app: typed, keyword-only, transactional functions."""
