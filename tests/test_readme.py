"""The README's Python snippet runs as written and prints what its comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_the_two_commands_first():
    text = README.read_text()
    assert text.index("make demo") < text.index("make test") < text.index("## ")


def test_python_snippet_runs_and_prints_what_it_says():
    blocks = python_blocks()
    assert blocks, "README has a python snippet"
    code = blocks[0]
    assert len(code.strip().splitlines()) <= 10
    expected = [
        m.group(1).strip()
        for m in re.finditer(r"print\(.*\)\s+# (\S+(?: \S+)*?)(?:\s+\(|\s+--|$)", code, flags=re.M)
    ]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    printed = out.getvalue().strip().splitlines()
    assert printed == expected
