"""OSC addresses: the form of a param's address, and OSC 1.0 address pattern matching.

A param's address is ``<prefix>/<node>/<param>`` (``prefix`` is ``""`` or ``/something``).
A received address may be a pattern (OSC 1.0): ``?`` one character, ``*`` any run of
characters, ``[abc]`` / ``[a-z]`` / ``[!abc]`` one of (or none of) a set, ``{foo,bar}`` one of
several strings. None of them matches across a ``/``. (OSC 1.1's ``//`` is not supported: a
pattern holding it matches nothing.)

Patterns are compiled to RE2 (``google-re2``), whose automata match in time linear in the
address, with no backtracking: a pattern of many ``*`` costs what a short one costs. Patterns
are at most :data:`MAX_PATTERN_LENGTH` characters (longer ones are refused with
``PatternError``), which also bounds what a compiled pattern holds in memory.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Protocol

import re2

__all__ = ["normalize_prefix", "param_address", "is_pattern", "compile_pattern", "PatternError",
           "AddressPattern", "MAX_PATTERN_LENGTH"]

MAX_PATTERN_LENGTH = 256
_SPECIAL = set("*?[]{}")
_SLASH = ord("/")


class PatternError(ValueError):
    """A malformed address pattern (an unclosed ``[`` or ``{``, say) or one too long."""


class AddressPattern(Protocol):
    """What :func:`compile_pattern` gives: ``fullmatch(address)`` is truthy on a match."""

    def fullmatch(self, address: str) -> object: ...


def normalize_prefix(prefix: str | None) -> str:
    """``"flowml"``, ``"/flowml/"`` -> ``"/flowml"``; ``""``, ``"/"``, None -> ``""``."""
    p = (prefix or "").strip().strip("/")
    return f"/{p}" if p else ""


def param_address(prefix: str, node: str, param: str) -> str:
    return f"{prefix}/{node}/{param}"


def is_pattern(address: str) -> bool:
    """True when ``address`` holds any OSC wildcard character."""
    return any(c in _SPECIAL for c in address)


def compile_pattern(pattern: str) -> AddressPattern:
    """A matcher whose ``fullmatch(address)`` says whether ``pattern`` matches ``address``
    (cached); raises PatternError for a malformed or too long pattern."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"the pattern is {len(pattern)} characters long; at most "
                           f"{MAX_PATTERN_LENGTH} (send a shorter one, e.g. /node/*)")
    return _compile(pattern)


@lru_cache(maxsize=64)
def _compile(pattern: str) -> AddressPattern:
    regex = translate(pattern)
    options = re2.Options()
    options.max_mem = 2 << 20  # enough for any pattern of MAX_PATTERN_LENGTH (and a bound)
    options.log_errors = False  # RE2 would print to stderr (fd 2) for each hostile pattern
    try:
        return re2.compile(regex, options)
    except re2.error as exc:  # not expected: translate() writes only what RE2 reads
        raise PatternError(f"cannot compile the pattern {pattern[:80]!r}: {exc}") from None


def translate(pattern: str) -> str:
    """The RE2 regular expression (to be fully matched) for an OSC address pattern."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            while i + 1 < n and pattern[i + 1] == "*":  # '**' means what '*' means
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise PatternError(f"unclosed '[' at position {i + 1} of {_show(pattern)}")
            out.append(_char_class(pattern[i + 1:end], pattern))
            i = end
        elif c == "{":
            end = pattern.find("}", i + 1)
            if end < 0:
                raise PatternError(f"unclosed '{{' at position {i + 1} of {_show(pattern)}")
            words = pattern[i + 1:end].split(",")
            if any("/" in w for w in words):
                raise PatternError(f"'{{...}}' cannot hold '/' in {_show(pattern)}")
            out.append("(?:" + "|".join(_literal(w) for w in words) + ")")
            i = end
        elif c in "]}":
            raise PatternError(f"unexpected {c!r} at position {i + 1} of {_show(pattern)}")
        else:
            out.append(_literal(c))
        i += 1
    return "".join(out)


def _literal(text: str) -> str:
    return "".join(_char(c) for c in text)


def _char(c: str) -> str:
    """One character as RE2 reads it literally, inside or outside a class."""
    return c if c.isalnum() and c.isascii() else f"\\x{{{ord(c):x}}}"


def _char_class(body: str, pattern: str) -> str:
    """``[...]`` of OSC as an RE2 class that never matches ``/``."""
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    if not body:
        raise PatternError(f"empty '[]' in {_show(pattern)}")
    ranges: list[tuple[int, int]] = []
    j = 0
    while j < len(body):
        if j + 2 < len(body) and body[j + 1] == "-":
            lo, hi = ord(body[j]), ord(body[j + 2])
            if lo > hi:
                raise PatternError(f"bad range '{body[j]}-{body[j + 2]}' in {_show(pattern)}")
            j += 3
        else:
            lo = hi = ord(body[j])
            j += 1
        ranges.append((lo, hi))
    if negate:
        ranges.append((_SLASH, _SLASH))
    else:  # cut '/' out of every range
        ranges = [r for lo, hi in ranges for r in ((lo, min(hi, _SLASH - 1)), (max(lo, _SLASH + 1), hi))
                  if r[0] <= r[1]]
        if not ranges:
            return "[^\\x00-\\x{10ffff}]"  # matches nothing, as a class of '/' alone
    inner = "".join(_char(chr(lo)) if lo == hi else f"{_char(chr(lo))}-{_char(chr(hi))}"
                    for lo, hi in ranges)
    return f"[^{inner}]" if negate else f"[{inner}]"


def _show(pattern: str) -> str:
    return repr(pattern) if len(pattern) <= 80 else repr(pattern[:77] + "...")
