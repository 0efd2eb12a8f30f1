"""Writes of the marketing app: typed, keyword-only, transactional functions."""
