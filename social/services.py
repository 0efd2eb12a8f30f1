"""Writes of the social app: typed, keyword-only, transactional functions."""
