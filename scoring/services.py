"""Writes of the scoring app: typed, keyword-only, transactional functions."""
