"""How stop and banned strings are typed on one line (the sampling panel's boxes, --stop)."""

import pytest

from app.engine.text_escapes import escape, unescape
from app.ui.sampler_text import read_lines


@pytest.mark.parametrize(("typed", "meant"), [
    ("\\n\\n", "\n\n"),
    ("a\\tb", "a\tb"),
    ("C:\\\\dir", "C:\\dir"),
    ("é", "é"),
    ("naïve — “quoted” 日本", "naïve — “quoted” 日本"),
    ("\\x41 \\u00e9 \\q", "\\x41 \\u00e9 \\q"),  # only \n, \t and \\ are escapes
    ("ends with \\", "ends with \\"),
])
def test_unescape_reads_line_breaks_tabs_and_backslashes_only(typed: str, meant: str) -> None:
    assert unescape(typed) == meant


@pytest.mark.parametrize("text", ["\n\n", "THE END", "a\\nb", "tab\there\\", "café\n"])
def test_escape_gives_one_line_that_reads_back_the_same(text: str) -> None:
    assert "\n" not in escape(text)
    assert unescape(escape(text)) == text


def test_the_panels_boxes_read_one_escaped_string_per_line() -> None:
    assert read_lines("\\n\\n\n\nTHE END\ncafé\\t\n") == ("\n\n", "THE END", "café\t")
