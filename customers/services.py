"""Writes of the customers app: typed, keyword-only, transactional functions."""
