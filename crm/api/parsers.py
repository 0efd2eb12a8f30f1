"""The API's JSON parser: DRF's, with a bound on nesting.

Python's JSON decoder recurses once per level, so a body of ten thousand ``[`` raises
``RecursionError``; and a body just under that limit still breaks every recursive step after
parsing (serializers, validation, rendering an echo). Both answer 400 here.
"""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

# Far deeper than any request of the API needs (segment rules nest a few levels).
MAX_JSON_DEPTH = 64


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(
                f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels."
            ) from exc
        if json_depth(data) > MAX_JSON_DEPTH:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
        return data


def json_depth(value: Any) -> int:
    """How deeply ``value`` nests objects and lists (a scalar is 0), without recursion: level
    by level, carrying only the containers down (a body of 1,000 events has some 20,000
    scalars and a few thousand containers)."""
    deepest = 0
    level = [value] if isinstance(value, dict | list) else []
    while level and deepest <= MAX_JSON_DEPTH:
        deepest += 1
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            below += [child for child in children if isinstance(child, dict | list)]
        level = below
    return deepest
