"""MCA v1 import commands, per-region transforms, runs and reconciliation."""
