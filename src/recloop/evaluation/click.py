"""Offline evaluation of click prediction: AUC and log loss, against a logistic regression.

The design document's protocol: a random 80/20 split of the interactions
(``recloop.data.splits.random_split``, seed 42); a click is a rating >= 4 (for rows of
another event type, the event itself). Each test row's ``behavior`` is the user's
smoothed click share over their *train* interactions with an earlier timestamp
(``prior_click_share``, which the click model uses for its training rows too), so
neither the feature nor its normalisation sees a test label.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from recloop.evaluation.metrics import auc, log_loss


def prior_click_share(
    user_idx: np.ndarray,
    timestamp: np.ndarray,
    click: np.ndarray,
    counts: np.ndarray | None = None,
    prior: float = 1.0,
) -> np.ndarray:
    """Each row's ``behavior``: the user's smoothed click share before that row.

    ``(clicks + prior) / (interactions + 2 * prior)`` over the same user's rows with a
    strictly earlier timestamp (rows sharing a timestamp do not see each other).
    ``counts`` (bool, default all) says which rows count as history; the others only
    receive a value (test rows scored against train history). Returns (n,) float32.
    """
    user_idx = np.asarray(user_idx)
    n = len(user_idx)
    if n == 0:
        return np.zeros(0, np.float32)
    ts = np.asarray(timestamp, np.int64)
    c = np.asarray(click, np.float64)
    hist = np.ones(n, bool) if counts is None else np.asarray(counts, bool)
    _, uu = np.unique(user_idx, return_inverse=True)
    order = np.lexsort((ts, uu))
    u_s, t_s = uu[order], ts[order]
    w_s = hist[order].astype(np.float64)
    c_s = c[order] * w_s
    # exclusive running sums, restarted per user
    cum_c = np.cumsum(c_s) - c_s
    cum_n = np.cumsum(w_s) - w_s
    new_user = np.r_[True, u_s[1:] != u_s[:-1]]
    start = np.maximum.accumulate(np.where(new_user, np.arange(n), 0))
    cum_c -= cum_c[start]
    cum_n -= cum_n[start]
    # rows tied in (user, time) take the sums at the first row of their tie
    new_group = new_user | np.r_[True, t_s[1:] != t_s[:-1]]
    first = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    share = (cum_c[first] + prior) / (cum_n[first] + 2 * prior)
    out = np.empty(n, np.float32)
    out[order] = share
    return out


class ClickPredictor(Protocol):
    def predict_proba(
        self, user_id: object, item_id: object, behavior: float | None = None
    ) -> float: ...


def click_labels(df: pd.DataFrame, threshold: float = 4.0) -> np.ndarray:
    """1.0 where a rating reaches ``threshold`` or a non-rating event happened, else 0.0."""
    value = (
        pd.to_numeric(df["value"], errors="coerce").fillna(0.0).to_numpy(np.float64)
        if "value" in df
        else np.ones(len(df))
    )
    kind = _types(df)
    click: np.ndarray = np.where(
        kind == "rating", value >= threshold, (kind != "skip") & (kind != "dislike")
    )
    return click.astype(np.float32)


def _types(df: pd.DataFrame) -> np.ndarray:
    col = "type" if "type" in df.columns else "event" if "event" in df.columns else None
    return (
        np.full(len(df), "rating", dtype=object) if col is None else df[col].astype(str).to_numpy()
    )


def behavior_features(
    train: pd.DataFrame, rows: pd.DataFrame | None = None, threshold: float = 4.0
) -> np.ndarray:
    """``behavior`` of ``rows`` (default: of ``train`` itself) from ``train``'s history only.

    Returns (len(rows),) float32: the user's smoothed click share over their train
    interactions with a strictly earlier timestamp.
    """
    click = click_labels(train, threshold)
    ts = train["timestamp"].to_numpy(np.int64)
    users = train["user_id"].astype(str).to_numpy()
    if rows is None:
        return prior_click_share(users, ts, click)
    n = len(train)
    share = prior_click_share(
        np.concatenate([users, rows["user_id"].astype(str).to_numpy()]),
        np.concatenate([ts, rows["timestamp"].to_numpy(np.int64)]),
        np.concatenate([click, np.zeros(len(rows), np.float32)]),
        counts=np.arange(n + len(rows)) < n,
    )
    return share[n:]


def click_metrics(
    rec: ClickPredictor, train: pd.DataFrame, test: pd.DataFrame, threshold: float = 4.0
) -> dict[str, Any]:
    """AUC and log loss of ``rec.predict_proba(user_id, item_id, behavior)`` on ``test``.

    ``rec`` was fitted on ``train`` (a ``Recommender`` with any model: models without a
    click head answer with a score percentile, which has an AUC but no meaningful log loss).
    """
    y = click_labels(test, threshold)
    b = behavior_features(train, test, threshold)
    p = np.fromiter(
        (
            rec.predict_proba(u, i, float(x))
            for u, i, x in zip(test["user_id"].tolist(), test["item_id"].tolist(), b.tolist())
        ),
        np.float64,
        len(test),
    )
    return {
        "auc": auc(y, p),
        "log_loss": log_loss(y, p),
        "n": int(len(y)),
        "click_rate": float(y.mean()) if len(y) else 0.0,
    }


def logistic_baseline(
    train: pd.DataFrame,
    test: pd.DataFrame,
    threshold: float = 4.0,
    l2: float = 1e-4,
    steps: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Logistic regression on the click model's inputs: one-hot user, one-hot item, behavior.

    ``l2`` penalises the per-id weights (mean over rows); the behavior is standardised
    with train's mean and deviation. Ids unseen in train weigh 0. Fitted full-batch with
    L-BFGS. Returns the same keys as ``click_metrics``.
    """
    torch.manual_seed(seed)
    y_tr = torch.from_numpy(click_labels(train, threshold))
    y_te = click_labels(test, threshold)
    b_tr = behavior_features(train, None, threshold)
    b_te = behavior_features(train, test, threshold)
    mean, std = float(b_tr.mean()), float(b_tr.std()) or 1.0
    f_tr = torch.from_numpy((b_tr - mean) / std)
    f_te = torch.from_numpy((b_te - mean) / std)
    users = {x: j for j, x in enumerate(dict.fromkeys(train["user_id"].astype(str)))}
    items = {x: j for j, x in enumerate(dict.fromkeys(train["item_id"].astype(str)))}

    def idx(col: pd.Series, vocab: dict[str, int]) -> torch.Tensor:
        return (
            torch.as_tensor(
                np.fromiter((vocab.get(x, -1) for x in col.astype(str)), np.int64, len(col))
            )
            + 1
        )  # 0: unseen

    u_tr, i_tr = idx(train["user_id"], users), idx(train["item_id"], items)
    u_te, i_te = idx(test["user_id"], users), idx(test["item_id"], items)
    wu = torch.zeros(len(users) + 1, requires_grad=True)
    wi = torch.zeros(len(items) + 1, requires_grad=True)
    wb = torch.zeros(2, requires_grad=True)  # behavior weight, intercept
    mask_u = torch.ones(len(users) + 1)
    mask_u[0] = 0
    mask_i = torch.ones(len(items) + 1)
    mask_i[0] = 0

    def logits(u: torch.Tensor, i: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return (wu * mask_u)[u] + (wi * mask_i)[i] + wb[0] * f + wb[1]

    opt = torch.optim.LBFGS([wu, wi, wb], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(logits(u_tr, i_tr, f_tr), y_tr)
        loss = loss + l2 * (wu.pow(2).sum() + wi.pow(2).sum())
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]
    with torch.no_grad():
        p = torch.sigmoid(logits(u_te, i_te, f_te)).double().numpy()
    return {
        "auc": auc(y_te, p),
        "log_loss": log_loss(y_te, p),
        "n": int(len(y_te)),
        "click_rate": float(y_te.mean()) if len(y_te) else 0.0,
    }
