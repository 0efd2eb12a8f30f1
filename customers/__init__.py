"""Profiles, identity aliases, identity resolution, merge, activities (timeline), notes, sync log
and the event ingestion pipeline.
"""
