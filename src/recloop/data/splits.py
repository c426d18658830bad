"""Train / validation / test splits of an interaction table (sorted by time, stably).

Every split is a partition: each row lands in exactly one part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recloop.errors import InvalidInputError


@dataclass
class Split:
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("timestamp", kind="stable").reset_index(drop=True)


def random_split(
    df: pd.DataFrame, test_size: float = 0.2, valid_size: float = 0.0, seed: int = 42
) -> Split:
    """Rows shuffled with ``seed`` and cut (the design document's 80/20 with seed 42)."""
    if not 0 < test_size < 1 or not 0 <= valid_size < 1 or test_size + valid_size >= 1:
        raise InvalidInputError(
            "test_size",
            f"test_size and valid_size must be fractions summing below 1, got {test_size}, {valid_size}",
        )
    order = np.random.default_rng(seed).permutation(len(df))
    n_test = int(round(len(df) * test_size))
    n_valid = int(round(len(df) * valid_size))
    parts = np.split(order, [n_test, n_test + n_valid])
    test, valid, train = (df.iloc[np.sort(p)].reset_index(drop=True) for p in parts)
    return Split(train, valid, test)


def leave_one_out(df: pd.DataFrame, valid: bool = True, min_train: int = 1) -> Split:
    """Per user, the last interaction by time goes to test, the one before to validation.

    Users with fewer than ``min_train + 1 (+1 with valid)`` interactions keep them all in train.
    """
    df = _sorted(df)
    pos_from_end = df.groupby("user_id", sort=False).cumcount(ascending=False).to_numpy()
    sizes = df.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
    need = min_train + 1 + int(valid)
    eligible = sizes >= need
    test_mask = eligible & (pos_from_end == 0)
    valid_mask = eligible & (pos_from_end == 1) if valid else np.zeros(len(df), bool)
    train_mask = ~(test_mask | valid_mask)
    return Split(
        df[train_mask].reset_index(drop=True),
        df[valid_mask].reset_index(drop=True),
        df[test_mask].reset_index(drop=True),
    )


def time_split(df: pd.DataFrame, test_fraction: float = 0.2, valid_fraction: float = 0.0) -> Split:
    """A global cut in time: the last ``test_fraction`` of events (by time) is test."""
    if (
        not 0 < test_fraction < 1
        or not 0 <= valid_fraction < 1
        or test_fraction + valid_fraction >= 1
    ):
        raise InvalidInputError(
            "test_fraction", f"fractions must sum below 1, got {test_fraction}, {valid_fraction}"
        )
    df = _sorted(df)
    n = len(df)
    cut_test = n - int(round(n * test_fraction))
    cut_valid = cut_test - int(round(n * valid_fraction))
    return Split(
        df.iloc[:cut_valid].reset_index(drop=True),
        df.iloc[cut_valid:cut_test].reset_index(drop=True),
        df.iloc[cut_test:].reset_index(drop=True),
    )
