from __future__ import annotations

from datetime import UTC, datetime

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

INVALID_CURSOR = "Invalid cursor: pass the next or previous link of a page as it was given."


class CreatedCursorPagination(CursorPagination):
    """Keyset pagination, newest first: stable under inserts, no ``COUNT(*)``.

    A cursor or ``page_size`` that cannot be used is a 400 naming the parameter (DRF answers
    a bad cursor 404 and ignores a bad page size)."""

    ordering = ("-created_at", "-pk")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise ValidationError(
                {
                    self.page_size_query_param: [
                        f"Expected a whole number from 1 to {self.max_page_size}."
                    ]
                }
            )
        return size

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from exc
        if cursor is not None and cursor.position is not None:
            _check_position(cursor.position, self.cursor_query_param)
        return cursor


def _check_position(position: str, param: str) -> None:
    """The position is the ``created_at`` of the page's edge row; one that PostgreSQL could
    not compare (not a date-time, a NUL, an offset it cannot store) is refused here."""
    try:
        moment = datetime.fromisoformat(position)
        if moment.tzinfo is None:
            raise ValueError("naive")
        moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValidationError({param: [INVALID_CURSOR]}) from exc
    offset = moment.utcoffset()
    if offset is not None and abs(offset.total_seconds()) >= 16 * 3600:
        raise ValidationError({param: [INVALID_CURSOR]})
