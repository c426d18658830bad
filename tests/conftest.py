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


_EXIT_STATUS = 0


def pytest_sessionfinish(session, exitstatus):
    global _EXIT_STATUS
    _EXIT_STATUS = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Leave without running C++ static destructors.

    With torch, faiss and worker threads in one process, interpreter teardown sometimes
    aborts ("terminate called without an active exception") after every test has passed
    and the summary is printed, which would turn a green run red. Results are final here.
    """
    import sys

    if os.environ.get("RECLOOP_TEST_CLEAN_EXIT", "1") == "1":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS)
