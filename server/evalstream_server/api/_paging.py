"""Page sizes of the paged reads (ListRuns, ListProjects, GetSpecimens, ...)."""

from __future__ import annotations

from evalstream_server.errors import FieldViolation

MAX_PAGE = 1000
DEFAULT_PAGE = 100


def checked_page_size(value: int, field: str, violations: list[FieldViolation]) -> int:
    """``value``, or the default page size for 0; a violation of ``field`` when out of range."""
    if value == 0:
        return DEFAULT_PAGE
    if not 1 <= value <= MAX_PAGE:
        violations.append(FieldViolation(field, f"{value} is not in [1, {MAX_PAGE}]"))
    return value
