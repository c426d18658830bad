"""Content tests run with the hashed text fallback unless a test asks for MiniLM."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(autouse=True)
def hashed_text(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    monkeypatch.setenv("RECLOOP_TEXT_ENCODER", "hashed")
    monkeypatch.setenv("RECLOOP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def genre_items(n_items: int = 80) -> pd.DataFrame:
    """Items of the two-groups set with their group as a genre and a title."""
    return pd.DataFrame(
        {
            "item_id": range(n_items),
            "genres": ["Even" if i % 2 == 0 else "Odd" for i in range(n_items)],
            "title": [f"{'calm' if i % 2 == 0 else 'loud'} film {i}" for i in range(n_items)],
            "year": [1990 + i % 10 for i in range(n_items)],
        }
    )
