"""Rules for text that people send us (names, filters) and for text we write into logs."""

from __future__ import annotations

import re
import unicodedata

# C0 controls, DEL, C1 controls, the bidi embeddings/overrides (U+202A-U+202E) and isolates
# (U+2066-U+2069) that make text display in another order than it is stored, and lone
# surrogates (not text at all: PostgreSQL cannot store them).
_FORBIDDEN_CLASS = "\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069\\ud800-\\udfff"
FORBIDDEN_CHARS = re.compile(f"[{_FORBIDDEN_CLASS}]")
# The same rule for the OpenAPI schema (ECMA-262 syntax; surrogates cannot appear in JSON text
# that a client's schema validator sees as a string, so they are left out there).
PLAIN_TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]*$"

# Characters that draw nothing but are not `str.isspace()`: fillers used to fake a blank name.
_BLANK_FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def has_forbidden_chars(value: str) -> bool:
    return FORBIDDEN_CHARS.search(value) is not None


def is_invisible(value: str) -> bool:
    """True when nothing in `value` draws a glyph: whitespace, zero-width and format characters
    (U+200B, U+200D, U+2060, U+FEFF, U+00AD, ...), combining marks alone, blank fillers."""
    return all(
        char.isspace()
        or char in _BLANK_FILLERS
        or unicodedata.category(char) in {"Cf", "Mn", "Me", "Zs", "Zl", "Zp"}
        for char in value
    )


def escape_controls(value: str) -> str:
    """`value` with every forbidden character written as an escape: a log line stays one line
    and a terminal shows it as sent (an ANSI sequence cannot recolour or rewrite the log)."""
    return FORBIDDEN_CHARS.sub(lambda match: _escape(match.group()), value)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
