"""OSC addresses: the form of a param's address, and OSC 1.0 address pattern matching.

A param's address is ``<prefix>/<node>/<param>`` (``prefix`` is ``""`` or ``/something``).
A received address may be a pattern (OSC 1.0): ``?`` one character, ``*`` any run of
characters, ``[abc]`` / ``[a-z]`` / ``[!abc]`` one of (or none of) a set, ``{foo,bar}`` one of
several strings. None of them matches across a ``/``.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["normalize_prefix", "param_address", "is_pattern", "compile_pattern", "PatternError"]

_SPECIAL = set("*?[]{}")


class PatternError(ValueError):
    """A malformed address pattern (an unclosed ``[`` or ``{``, say)."""


def normalize_prefix(prefix: str | None) -> str:
    """``"flowml"``, ``"/flowml/"`` -> ``"/flowml"``; ``""``, ``"/"``, None -> ``""``."""
    p = (prefix or "").strip().strip("/")
    return f"/{p}" if p else ""


def param_address(prefix: str, node: str, param: str) -> str:
    return f"{prefix}/{node}/{param}"


def is_pattern(address: str) -> bool:
    """True when ``address`` holds any OSC wildcard character."""
    return any(c in _SPECIAL for c in address)


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A regex that fully matches the addresses ``pattern`` matches (cached)."""
    return re.compile(_translate(pattern))


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise PatternError(f"unclosed '[' at position {i + 1} of {pattern!r}")
            out.append(_char_class(pattern[i + 1:end], pattern))
            i = end
        elif c == "{":
            end = pattern.find("}", i + 1)
            if end < 0:
                raise PatternError(f"unclosed '{{' at position {i + 1} of {pattern!r}")
            words = pattern[i + 1:end].split(",")
            if any("/" in w for w in words):
                raise PatternError(f"'{{...}}' cannot hold '/' in {pattern!r}")
            out.append("(?:" + "|".join(re.escape(w) for w in words) + ")")
            i = end
        elif c in "]}":
            raise PatternError(f"unexpected {c!r} at position {i + 1} of {pattern!r}")
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _char_class(body: str, pattern: str) -> str:
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    if not body:
        raise PatternError(f"empty '[]' in {pattern!r}")
    parts = []
    j = 0
    while j < len(body):
        if j + 2 < len(body) and body[j + 1] == "-":
            lo, hi = body[j], body[j + 2]
            if lo > hi:
                raise PatternError(f"bad range '{lo}-{hi}' in {pattern!r}")
            parts.append(f"{re.escape(lo)}-{re.escape(hi)}")
            j += 3
        else:
            parts.append(re.escape(body[j]))
            j += 1
    inner = "".join(parts)
    return f"[^/{inner}]" if negate else f"(?:(?!/)[{inner}])"
