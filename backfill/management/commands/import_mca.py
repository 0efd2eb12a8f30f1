"""``import_mca``: the short name of ``import_mca_v1`` (same arguments)."""

from .import_mca_v1 import Command  # noqa: F401
