"""Serving reaches the engine through its public API only.

The rule: no module of ``recloop.serving`` reads an attribute whose name starts with ``_``
(private) or ends with ``_`` (the engine's fitted state, such as ``sequences_`` or
``model_``) on anything but its own ``self``, nor names one in ``getattr``/``setattr``/
``hasattr``. What serving needs has a public name on ``Recommender`` (``model_version``,
``events_applied``, ``recommend_with_scores``, ``similar_items``, ``learner_status``,
``retrieval_info``, ``close`` ...), so the engine can change its state layout freely.
"""

from __future__ import annotations

import ast
from pathlib import Path

import recloop.serving

SERVING = Path(recloop.serving.__file__).parent
#: names that may be read although they end with "_" (none: add one only with its reason)
ALLOWED: frozenset[str] = frozenset()


def _flagged(name: str) -> bool:
    dunder = name.startswith("__") and name.endswith("__")
    return not dunder and (name.startswith("_") or name.endswith("_")) and name not in ALLOWED


def violations(source: str, filename: str) -> list[str]:
    """``file:line name`` for each access the rule forbids in ``source``."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute) and _flagged(node.attr):
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if not own:
                out.append(f"{filename}:{node.lineno} .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _flagged(node.args[1].value)
        ):
            out.append(f"{filename}:{node.lineno} {node.func.id}(..., {node.args[1].value!r})")
    return out


def test_serving_uses_no_private_or_fitted_engine_attribute():
    files = sorted(SERVING.rglob("*.py"))
    assert len(files) > 5  # the package was found
    found = [v for f in files for v in violations(f.read_text(), str(f.relative_to(SERVING)))]
    assert found == []


def test_the_rule_catches_what_it_should():
    src = (
        "rec._lock\nrec.sequences_[0]\nstate.rec.seen_\ngetattr(rec, '_learner', None)\n"
        "self._guard\nrec.model_version\nrec.__class__\n"
    )
    assert sorted(v.split(" ", 1)[1] for v in violations(src, "x.py")) == [
        "._lock",
        ".seen_",
        ".sequences_",
        "getattr(..., '_learner')",
    ]
