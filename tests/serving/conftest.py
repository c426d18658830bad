"""Fixtures for the HTTP service: one small fitted MF model, apps and clients around it."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

warnings.filterwarnings("ignore", message=".*httpx.* with .*starlette.testclient.* is deprecated")
from fastapi.testclient import TestClient  # noqa: E402

from recloop import Recommender  # noqa: E402
from recloop.config import load_settings  # noqa: E402
from recloop.serving import create_app  # noqa: E402


def two_groups_df(
    n_users: int = 60, n_items: int = 80, per_user: int = 12, seed: int = 0
) -> pd.DataFrame:
    """Even users like even items, odd users odd items (tests/conftest.py's ``two_groups``)."""
    rng = np.random.default_rng(seed)
    rows, t = [], 1_000_000
    for u in range(n_users):
        for i in rng.choice(np.arange(u % 2, n_items, 2), size=per_user, replace=False):
            t += int(rng.integers(1, 60))
            rows.append((u, int(i), t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fitted ``mf`` model saved once per session (each test loads its own copy)."""
    path = tmp_path_factory.mktemp("serving") / "mf"
    Recommender(model="mf", seed=0).fit(two_groups_df()).save(path)
    return path


@pytest.fixture
def rec(model_dir: Path) -> Recommender:
    return Recommender.load(model_dir)


@pytest.fixture
def make_client(rec: Recommender) -> Iterator[Callable[..., TestClient]]:
    """``make_client(engine=rec, **settings)`` → a started ``TestClient`` (closed after the test)."""
    with ExitStack() as stack:

        def make(engine: Any = rec, **settings: Any) -> TestClient:
            app = create_app(load_settings(env={}, **settings), engine)
            return stack.enter_context(TestClient(app, raise_server_exceptions=False))

        yield make


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
