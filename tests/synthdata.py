"""Small synthetic sets with a known answer, shared by the tests (importable: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def synthetic(
    n_users: int = 60, n_items: int = 80, per_user: int = 12, seed: int = 0
) -> pd.DataFrame:
    """Two taste groups: even users like even items, odd users odd items (contract_check's set)."""
    rng = np.random.default_rng(seed)
    rows, t = [], 1_000_000
    for u in range(n_users):
        pool = np.arange(u % 2, n_items, 2)
        for i in rng.choice(pool, size=per_user, replace=False):
            t += int(rng.integers(1, 60))
            rows.append((u, int(i), t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
