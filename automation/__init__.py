"""Journeys, steps, enrollments, the journey engine, triggers and the wait sweep."""
