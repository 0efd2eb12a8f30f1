"""In-process registries that let later apps plug into earlier ones without imports
pointing the wrong way (``customers`` never imports ``automation`` or ``social``).

Apps register in their ``AppConfig.ready()``.
"""

from __future__ import annotations

from collections.abc import Callable

#: ``hook(*, tenant, winner, loser) -> int``: moves the app's rows from loser to winner
#: set-wise inside the merge's transaction and returns how many rows moved.
MergeHook = Callable[..., int]
_merge_hooks: dict[str, MergeHook] = {}


def register_merge_hook(name: str, hook: MergeHook) -> None:
    _merge_hooks[name] = hook


def merge_hooks() -> dict[str, MergeHook]:
    return dict(_merge_hooks)


__all__ = ["MergeHook", "merge_hooks", "register_merge_hook"]
