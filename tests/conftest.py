"""Shared fixtures: MovieLens-100K (offline mirror, cached) and its leave-one-out split."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ml100k():
    """The full ML-100K ``Dataset`` (fetched once into the user's cache)."""
    from recloop.data.movielens import load_movielens_100k

    return load_movielens_100k()


@pytest.fixture(scope="session")
def ml100k_loo(ml100k):
    """Leave-last-out by time (the outside harness's protocol): train, test (one row per user)."""
    from recloop.data.splits import leave_one_out

    return leave_one_out(ml100k.interactions, valid=False)


def synthetic(n_users: int = 60, n_items: int = 80, per_user: int = 12, seed: int = 0) -> pd.DataFrame:
    """Two taste groups: even users like even items, odd users odd items (contract_check's set)."""
    rng = np.random.default_rng(seed)
    rows, t = [], 1_000_000
    for u in range(n_users):
        pool = np.arange(u % 2, n_items, 2)
        for i in rng.choice(pool, size=per_user, replace=False):
            t += int(rng.integers(1, 60))
            rows.append((u, int(i), t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


@pytest.fixture
def two_groups() -> pd.DataFrame:
    return synthetic()


def pytest_configure(config):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
