"""A fitted SASRec's request-time state without torch: numpy views of its weights, the
same maths as ``SASRecNet.forward(..., last_only=True)`` in numpy (``numpy_state``) and
in one compiled call (``jit_state``, ``_sasrec_jit``).

Scoring one user through torch costs mostly per-operation overhead on a window of 10
items; these paths compute the state for every order of same-second events and every
window in one pass. The tests check ``numpy_state`` against torch and ``jit_state``
against ``numpy_state``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
from scipy.special import erf as _erf
from torch import nn

from recloop.models._sasrec_net import SASRecNet, _Block


class _NumpyWeights:
    """Numpy views of a ``SASRecNet``'s parameters (shared memory: in-place optimiser steps
    show through; a replaced parameter, as ``grow`` makes, needs a new instance)."""

    def __init__(self, net: SASRecNet) -> None:
        def a(t: torch.Tensor) -> np.ndarray:
            out: np.ndarray = t.detach().numpy()
            return out

        def ln(x: nn.LayerNorm) -> tuple[np.ndarray, np.ndarray, float]:
            return a(x.weight), a(x.bias), float(x.eps)

        def lin(x: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
            return a(x.weight).T, a(x.bias)

        # the objects themselves, not their ids: a freed parameter's id can be reused by a
        # later one, and an id match would then serve stale views
        self.key = (net, net.item, net.bias)
        self.m, self.d = net.max_len, net.dim
        self.item, self.pos, self.bias = a(net.item), a(net.pos), a(net.bias)
        blocks = cast(list[_Block], list(net.blocks))
        self.blocks: list[tuple[Any, ...]] = [
            (
                b.n_heads,
                ln(b.ln1),
                a(b.qkv.weight)[: self.d].T,
                a(b.qkv.bias)[: self.d],
                a(b.qkv.weight)[self.d :].T,
                a(b.qkv.bias)[self.d :],
                lin(b.proj),
                ln(b.ln2),
                lin(b.ff1),
                lin(b.ff2),
            )
            for b in blocks
        ]
        self.ln = ln(net.ln)
        self.long = lin(net.long) if net.long is not None else None
        #: a one-block model's weights as the compiled ``jit_state`` takes them (torch's
        #: layouts, the same shared memory), or None: deeper models, or no numba
        self.jit: tuple[Any, ...] | None = None
        # imported here: numba loads when a model is first scored, not when recloop is imported
        from recloop.models import _sasrec_jit

        self.jit_fn = _sasrec_jit.STATE
        if self.jit_fn is not None and len(blocks) == 1:
            b = blocks[0]
            long = (
                (a(net.long.weight), a(net.long.bias))
                if net.long is not None
                else (np.zeros((1, 1), np.float32), np.zeros(1, np.float32))
            )
            self.jit = (
                self.item,
                self.pos,
                b.n_heads,
                ln(b.ln1),
                a(b.qkv.weight),
                a(b.qkv.bias),
                a(b.proj.weight),
                a(b.proj.bias),
                ln(b.ln2),
                a(b.ff1.weight),
                a(b.ff1.bias),
                a(b.ff2.weight),
                a(b.ff2.bias),
                net.long is not None,
                *long,
                self.ln,
            )


def _layer_norm(x: np.ndarray, p: tuple[np.ndarray, np.ndarray, float]) -> np.ndarray:
    # sums scaled by 1/d: ndarray.mean's Python-level wrapper costs more than the maths here
    inv = np.float32(1.0 / x.shape[-1])
    c = x - x.sum(-1, keepdims=True) * inv
    out: np.ndarray = (
        c / np.sqrt(np.square(c).sum(-1, keepdims=True) * inv + np.float32(p[2])) * p[0] + p[1]
    )
    return out


def _softmax_last(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    out: np.ndarray = e / e.sum(-1, keepdims=True)
    return out


def _window_starts(windows: Sequence[int], n: int) -> dict[int, int]:
    """Where each window starts in the last ``n`` items, ascending, and how many of
    ``windows`` start there (windows no longer than the history all read it whole)."""
    share: dict[int, int] = {}
    for k in windows:  # (plain Python: np.unique costs more than this whole loop on a few windows)
        share[max(0, n - k)] = share.get(max(0, n - k), 0) + 1
    return dict(sorted(share.items()))


def jit_state(w: _NumpyWeights, orders: np.ndarray, windows: Sequence[int]) -> np.ndarray:
    """``numpy_state(w, orders, windows).mean(0)`` in one compiled call, for a one-block
    model (``w.jit`` set): (orders, length) → (dim,)."""
    assert w.jit is not None
    wins = [min(k, w.m) for k in windows]
    n = min(max(wins), orders.shape[1])
    share = _window_starts(wins, n)
    starts = np.fromiter(share, np.int64, len(share))
    weights = np.fromiter(share.values(), np.float32, len(share)) / np.float32(len(wins))
    out: np.ndarray = w.jit_fn(np.ascontiguousarray(orders, np.int64), n, starts, weights, *w.jit)
    return out


def numpy_state(
    w: _NumpyWeights, history: np.ndarray, window: int | Sequence[int] | None = None
) -> np.ndarray:
    """The output of ``net(seq, padded=False, before, last_only=True)`` for one non-empty
    history, in numpy: the same maths without torch's per-operation overhead, which is
    most of the cost of scoring one user (tests check it against the torch path).

    ``history`` is (length,) → (dim,), or (orders, length): the same items in several
    orders (the long-term mean, which ignores order, is shared) → (orders, dim).
    ``window``: read only the last ``window`` items (at most ``max_len``, the default); a
    sequence of windows gives the mean of the outputs over them, computed in one pass: a
    shorter window is the whole one with the keys before it masked out (its positions keep
    their embeddings, and the long-term mean covers the whole history either way).
    """
    hs = np.atleast_2d(history)
    m, d = w.m, w.d
    wins = [
        m if k is None else min(k, m)
        for k in (window if isinstance(window, Sequence) else [window])
    ]
    n = min(max(wins), hs.shape[1])
    cut = hs[:, -n:]
    n_orders = cut.shape[0]
    e = w.item[cut + 1]
    x = e * np.float32(math.sqrt(d)) + w.pos[m - n :]
    share = _window_starts(wins, n)
    starts = np.fromiter(share, np.int64, len(share))
    n_windows, masked = len(starts), bool(starts[-1] > 0)
    r = n_orders
    keys = np.arange(n)
    key_mask: np.ndarray | None = None  # (r, 1, n, n) once the rows are per (window, order)
    for j, (heads, ln1, wq, bq, wkv, bkv, proj, ln2, ff1, ff2) in enumerate(w.blocks):
        top = j == len(w.blocks) - 1
        if masked and key_mask is None and not top:
            # a lower block's output differs per window: one row per (window, order),
            # windows outermost; a query sees keys from its window's start on, or itself
            # (masked positions then stay finite; nothing inside the window reads them)
            see = np.tri(n, dtype=bool) & (
                (keys[None, None, :] >= starts[:, None, None]) | np.eye(n, dtype=bool)
            )
            key_mask = np.repeat(see, n_orders, 0)[:, None]
            x = np.concatenate([x] * n_windows) if n_windows > 1 else x
            r = n_windows * n_orders
        dh = d // heads
        h = _layer_norm(x, ln1)
        kv = (h @ wkv + bkv).reshape(r, n, 2, heads, dh)
        k, v = (
            kv[:, :, 0].transpose(0, 2, 3, 1),
            kv[:, :, 1].transpose(0, 2, 1, 3),
        )  # (r, heads, dh, n), (r, heads, n, dh)
        if top:  # only the last position matters from the top block
            q = (h[:, -1] @ wq + bq).reshape(r, heads, 1, dh)
            sc = q @ k / np.float32(math.sqrt(dh))  # (r, heads, 1, n)
            last = x[:, -1:]
            if key_mask is not None:
                a = _softmax_last(np.where(key_mask[:, :, -1:], sc, -np.inf)) @ v
            elif masked:
                # the windows differ only here, in which keys the last query sees: one pass
                # up to the scores, then (window, order) rows, windows outermost
                sees = (keys[None, :] >= starts[:, None])[
                    :, None, None, None, :
                ]  # (windows, 1, 1, 1, n)
                a = _softmax_last(np.where(sees, sc[None], -np.inf)) @ v[None]
                last = np.concatenate([last] * n_windows) if n_windows > 1 else last
                r = n_windows * n_orders
            else:
                a = _softmax_last(sc) @ v
            x = last + a.reshape(r, 1, d) @ proj[0] + proj[1]
        else:
            q = (h @ wq + bq).reshape(r, n, heads, dh).transpose(0, 2, 1, 3)
            sc = q @ k / np.float32(math.sqrt(dh))  # (r, heads, n, n)
            sc = np.where(np.tri(n, dtype=bool) if key_mask is None else key_mask, sc, -np.inf)
            x = (
                x
                + (_softmax_last(sc) @ v).transpose(0, 2, 1, 3).reshape(r, n, d) @ proj[0]
                + proj[1]
            )
        f = _layer_norm(x, ln2) @ ff1[0] + ff1[1]
        f = 0.5 * f * (1.0 + _erf(f * np.float32(0.7071067811865476)))
        x = x + f.astype(np.float32, copy=False) @ ff2[0] + ff2[1]
    if w.long is not None:
        total = e[0].sum(0) + w.item[hs[0, :-n] + 1].sum(0) if hs.shape[1] > n else e[0].sum(0)
        x = x + (total / np.float32(hs.shape[1])) @ w.long[0] + w.long[1]
    out: np.ndarray = _layer_norm(x[:, -1], w.ln).astype(np.float32, copy=False)
    if n_windows > 1:  # the mean over windows, each as many times as it was asked for
        weights = np.fromiter(share.values(), np.float32, len(share)) / np.float32(len(wins))
        out = (weights @ out.reshape(n_windows, n_orders * d)).reshape(n_orders, d)
    return out if np.ndim(history) == 2 else out[0]
