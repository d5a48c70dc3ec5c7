"""A seeded, bounded fuzzer of graph files: 10,000 mutants of the example graphs through the
validator in-process. Every mutant must give a ValidatedGraph or GraphErrors (never another
exception), each within a second (what a loaded CI machine allows, generously: see below)."""

from __future__ import annotations

import random
import time
import traceback
from pathlib import Path

import pytest

from flowml.graph import GraphErrors, load_graph
from flowml.plugins import load_registry

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ["demo", "matting_demo", "matting"]
MUTANTS = 10_000
SEED = 13

# what goes in: YAML's own characters, values of the wrong kind, odd characters and bombs
PIECES = [":", ": ", "{", "}", "[", "]", ",", "&a", "*a", "!!int ", "!!python/object ", "|", ">",
          "- ", "? ", "#", "'", '"', "\n", "\n  ", "\t", " ", "---\n", "<<: ", "~", "null", "true",
          "no", "yes", "1e309", "-1", "0x10", "nan", ".inf", "99999999999999999999", "3.5",
          "\x00", "\x0c", "\u2028", "\ufeff", "\x85", "é", "😀", "/", "//", "a/b/c", "{expr: t}",
          "{expr: '1 +'}", "{expr: '9**9**9'}", "[1, 2]", "{}", "[]", "[[[[[[", "]]]]",
          "&x [*x]", "{<<: *x}", "\\", "%YAML 1.1\n", "!", "@", "`"]


def mutate(text: str, rng: random.Random, tokens: list[str]) -> str:
    """One to three random edits of ``text``."""
    for _ in range(rng.randint(1, 3)):
        n = len(text)
        at = rng.randrange(n + 1)
        kind = rng.randrange(9)
        if kind == 0:  # delete a span
            text = text[:at] + text[at + rng.randint(1, 12):]
        elif kind == 1:  # insert a YAML piece
            text = text[:at] + rng.choice(PIECES) + text[at:]
        elif kind == 2:  # a token of the file in another place
            text = text[:at] + rng.choice(tokens) + text[at:]
        elif kind == 3:  # replace a token by another
            a, b = rng.choice(tokens), rng.choice(tokens + PIECES)
            text = text.replace(a, b, 1) if a in text else text
        elif kind == 4:  # lines: duplicate, drop or swap
            lines = text.split("\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            op = rng.randrange(3)
            if op == 0:
                lines.insert(i, lines[j])
            elif op == 1:
                del lines[i]
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif kind == 5:  # indentation
            lines = text.split("\n")
            i = rng.randrange(len(lines))
            lines[i] = " " * rng.choice([0, 1, 2, 3, 4, 8]) + lines[i].lstrip(" ")
            text = "\n".join(lines)
        elif kind == 6:  # truncate
            text = text[:at]
        elif kind == 7:  # a number changed
            digits = [i for i, c in enumerate(text) if c.isdigit()]
            if digits:
                i = rng.choice(digits)
                text = text[:i] + rng.choice(["0", "-", "99999", ".", "e9", "1_0"]) + text[i + 1:]
        else:  # a random byte-ish character
            text = text[:at] + chr(rng.choice([rng.randrange(32), rng.randrange(0x80, 0x3000)])) + text[at:]
    return text


@pytest.mark.timeout(600)
def test_ten_thousand_mutants_never_crash_the_validator(tmp_path):
    registry = load_registry()
    sources = {g: (ROOT / "graphs" / f"{g}.yaml").read_text() for g in GRAPHS}
    tokens = sorted({t for text in sources.values() for t in text.replace("{", " ").replace(
        "}", " ").replace(",", " ").split() if len(t) > 1})
    rng = random.Random(SEED)
    crashes: list[str] = []
    slowest, valid, invalid = 0.0, 0, 0
    for k in range(MUTANTS):
        name = GRAPHS[k % len(GRAPHS)]
        text = mutate(sources[name], rng, tokens)
        path = ROOT / "graphs" / f"{name}.yaml"  # relative paths in params resolve as in the repo
        start = time.process_time()
        try:
            load_graph(path, registry, text=text)
            valid += 1
        except GraphErrors as exc:
            invalid += 1
            assert exc.errors and all(e.line >= 0 and e.col >= 0 for e in exc.errors)
        except Exception:  # noqa: BLE001 - that is what we look for
            crashes.append(f"mutant {k} of {name}: {text!r}\n{traceback.format_exc()}")
        slowest = max(slowest, time.process_time() - start)
        if len(crashes) >= 5:
            break
    assert not crashes, "\n\n".join(crashes)
    assert valid + invalid == MUTANTS and valid > 100 and invalid > 5_000  # both kinds were made
    # CPU time, so other processes on the machine do not count; ~0.05 s measured for the slowest
    assert slowest < 1.0, f"slowest mutant took {slowest:.2f} s of CPU"
