"""Shared fixtures: MovieLens-100K (offline mirror, cached) and its leave-one-out split."""
from __future__ import annotations

import os

import pandas as pd
import pytest
import torch
from synthdata import synthetic

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


@pytest.fixture
def two_groups() -> pd.DataFrame:
    return synthetic()


def pytest_configure(config):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
