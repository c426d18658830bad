"""Tracked text says what the project is, never the story of how it was built.

Comments, docstrings and docs are written in the present tense; how a figure was found
belongs in ``docs/benchmarks.md`` with its command and in git history. This test fails on
numbered-round phrases (the word "session" or "round" followed by a number) and pointers
to a report ("see" followed by "report" or "the report") in the files under ``src``, ``tests``, ``docs`` and
``bench`` and in ``README.md``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATTERN = re.compile(
    r"\bsessions? \d|(?<![-\w])round \d|\bsee (the )?report\b", re.IGNORECASE
)  # "--rounds 3" (a flag) and "round-trip" are not narration


def tracked_text_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "src", "tests", "docs", "bench", "README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    me = Path(__file__).resolve()
    return [ROOT / p for p in out if (ROOT / p).resolve() != me and (ROOT / p).is_file()]


def hits(text: str) -> list[str]:
    return [m.group(0) for m in PATTERN.finditer(text)]


def test_the_pattern_finds_narration_and_spares_flags():
    # the phrases are built here so that this file does not carry them itself
    s, r = "sess" + "ion", "re" + "port"
    assert hits(f"tuned in {s} 3; {s.title()}s 4 and 5; round 2; (see {r}); see the {r}")
    assert len(hits(f"{s} 3, {s}s 4, round 2, see {r}")) == 4
    assert not hits("--rounds 3 interleaved; a round-trip; the session fixture; reports users")


def test_tracked_files_carry_no_development_history():
    found = []
    for path in tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # binary (a PNG)
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for h in hits(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {h!r}")
    assert found == [], "\n".join(found)
