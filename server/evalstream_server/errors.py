"""Field violations: the one error type every layer shares.

A leaf: it imports nothing of evalstream_server, so metrics/, analysis/,
store/, api/ and the transport may all use it without importing each other.
The api layer turns violations into google.rpc.BadRequest details; domain code
only says which field of which item is wrong and why.

Example:
    >>> v = [FieldViolation(f"images[{i}].x2", "x2 < x1") for i in range(MAX_VIOLATIONS + 5)]
    >>> capped = cap_violations(v, total=len(v))
    >>> len(capped), capped[-1].description
    (100, 'x2 < x1 (and 5 more violations not listed)')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MAX_VIOLATIONS", "FieldViolation", "InvalidRequest", "cap_violations"]

#: Most violations reported for one message; the last one notes any truncation.
MAX_VIOLATIONS = 100


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: a dotted path with indices, and what is wrong with it."""

    field: str
    description: str


class InvalidRequest(ValueError):
    """Input breaks the contract; ``violations`` says where.

    Example:
        >>> e = InvalidRequest([FieldViolation("images", "3 images but at most 2 per batch")])
        >>> str(e)
        'images: 3 images but at most 2 per batch'
    """

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations: tuple[FieldViolation, ...] = tuple(violations)
        shown = "; ".join(f"{v.field}: {v.description}" for v in self.violations[:3])
        more = len(self.violations) - 3
        super().__init__(shown + (f"; and {more} more" if more > 0 else ""))


def cap_violations(violations: Sequence[FieldViolation], total: int) -> list[FieldViolation]:
    """At most MAX_VIOLATIONS of ``total`` found; the last notes how many were left out."""
    out = list(violations[:MAX_VIOLATIONS])
    if total <= MAX_VIOLATIONS or not out:
        return out
    last = out[-1]
    out[-1] = FieldViolation(
        last.field, f"{last.description} (and {total - MAX_VIOLATIONS} more violations not listed)"
    )
    return out
