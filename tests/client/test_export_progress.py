"""`runs export`'s progress bar: on a terminal, for a long export only."""

from __future__ import annotations

import io

from evalstream.cli._export import LONG_EXPORT, _Bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_shows_on_a_terminal_for_a_long_export() -> None:
    stream = _Terminal()
    bar = _Bar(stream)
    bar(0, LONG_EXPORT)
    bar(LONG_EXPORT // 2, LONG_EXPORT)
    bar.close()
    assert f"{LONG_EXPORT // 2}/{LONG_EXPORT}" in stream.getvalue()


def test_bar_stays_off_for_a_short_export_or_a_pipe() -> None:
    short, pipe = _Terminal(), io.StringIO()
    for stream, total in ((short, LONG_EXPORT - 1), (pipe, 10 * LONG_EXPORT)):
        bar = _Bar(stream)
        bar(0, total)
        bar(total, total)
        bar.close()
        assert stream.getvalue() == ""
