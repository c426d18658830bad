"""A one-block SASRec's request-time state in one compiled call (numba).

``_sasrec_state.numpy_state`` computes the same maths with numpy, about 70 array
operations per user; on a history of 10 items each costs more in dispatch than in
arithmetic, and they are a large share of ``hybrid``'s per-event time in the streaming
replay. Here the whole state (every order, every window, the long-term mean) is one
``nogil`` call: loops over at most ``max_len`` positions, BLAS for the products over every
position and over every (order, window) row. The tests check it against ``numpy_state``,
which they check against torch.

``STATE`` is None where numba cannot be imported; ``sasrec`` then uses ``numpy_state``.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

STATE: Any = None

try:  # numba is a dependency, but the numpy path serves where it cannot load
    if os.environ.get("RECLOOP_NO_JIT"):
        raise ImportError("RECLOOP_NO_JIT is set")
    import numba
except ImportError:  # pragma: no cover - exercised with RECLOOP_NO_JIT=1
    numba = None  # type: ignore[assignment]

#: reassociation (so reductions vectorise) and fused multiply-adds, but no assumption that
#: values are finite: the attention's masked keys start from -inf
_FAST = {"reassoc", "contract"}


def _compiled(fn: Any) -> Any:
    """``fn`` compiled without the GIL, its machine code cached on disk (next to this file,
    else in the user's cache folder); compiled per process where neither is writable."""
    try:
        return numba.njit(cache=True, nogil=True, fastmath=_FAST)(fn)
    except RuntimeError:  # "no locator available": nowhere to cache
        return numba.njit(nogil=True, fastmath=_FAST)(fn)


if numba is not None:

    @_compiled
    def _layer_norm_row(
        x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float, out: np.ndarray
    ) -> None:
        d = x.shape[0]
        mean = np.float32(0.0)
        for j in range(d):
            mean += x[j]
        mean /= np.float32(d)
        var = np.float32(0.0)
        for j in range(d):
            c = x[j] - mean
            var += c * c
        inv = np.float32(1.0) / np.sqrt(var / np.float32(d) + np.float32(eps))
        for j in range(d):
            out[j] = (x[j] - mean) * inv * g[j] + b[j]

    @_compiled
    def _affine(x: np.ndarray, w: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        """out = w @ x + b for one row ``x``; ``w`` in torch's (out, in) layout."""
        for o in range(w.shape[0]):
            acc = np.float32(0.0)
            for i in range(w.shape[1]):
                acc += w[o, i] * x[i]
            out[o] = acc + b[o]

    @_compiled
    def _state(
        hs: np.ndarray,
        n: int,
        starts: np.ndarray,
        weights: np.ndarray,
        item: np.ndarray,
        pos: np.ndarray,
        heads: int,
        ln1: tuple[np.ndarray, np.ndarray, float],
        qkv_w: np.ndarray,
        qkv_b: np.ndarray,
        proj_w: np.ndarray,
        proj_b: np.ndarray,
        ln2: tuple[np.ndarray, np.ndarray, float],
        ff1_w: np.ndarray,
        ff1_b: np.ndarray,
        ff2_w: np.ndarray,
        ff2_b: np.ndarray,
        has_long: bool,
        long_w: np.ndarray,
        long_b: np.ndarray,
        ln: tuple[np.ndarray, np.ndarray, float],
    ) -> np.ndarray:
        orders, length = hs.shape
        m, d = pos.shape
        dh = d // heads
        scale = np.float32(math.sqrt(d))
        att = np.float32(1.0 / math.sqrt(dh))
        # the long-term term: the mean embedding of the whole history (order-free: row 0)
        lt = np.zeros(d, np.float32)
        if has_long:
            total = np.zeros(d, np.float32)
            for t in range(length):
                e = item[hs[0, t] + 1]
                for j in range(d):
                    total[j] += e[j]
            for j in range(d):
                total[j] /= np.float32(length)
            _affine(total, long_w, long_b, lt)
        # every order's window, normalised, as one block of rows for BLAS; an order that has
        # order 0's item at a position shares its row (the shuffles move a few runs only)
        at = np.empty((orders, n), np.int64)
        rows_needed = n
        for p in range(n):
            at[0, p] = p
        for o in range(1, orders):
            for p in range(n):
                if hs[o, length - n + p] == hs[0, length - n + p]:
                    at[o, p] = p
                else:
                    at[o, p] = rows_needed
                    rows_needed += 1
        x = np.empty((rows_needed, d), np.float32)
        h = np.empty((rows_needed, d), np.float32)
        for o in range(orders):
            for p in range(n):
                r = at[o, p]
                if o > 0 and r < n:
                    continue
                e = item[hs[o, length - n + p] + 1]
                q = pos[m - n + p]
                for j in range(d):
                    x[r, j] = e[j] * scale + q[j]
                _layer_norm_row(x[r], ln1[0], ln1[1], ln1[2], h[r])
        qkv = h @ qkv_w.T  # (rows, 3d): queries, keys, values, without the bias
        # the top block's last query, per (order, window): its attention output
        n_starts = len(starts)
        rows = orders * n_starts
        att_out = np.empty((rows, d), np.float32)
        resid = np.empty((rows, d), np.float32)
        sc = np.empty(n, np.float32)
        for o in range(orders):
            last = at[o, n - 1]
            for s in range(n_starts):
                first = starts[s]
                row = o * n_starts + s
                resid[row] = x[last]
                for hd in range(heads):
                    c0 = hd * dh
                    top = np.float32(-np.inf)
                    for k in range(first, n):
                        acc = np.float32(0.0)
                        for j in range(dh):
                            acc += (qkv[last, c0 + j] + qkv_b[c0 + j]) * (
                                qkv[at[o, k], d + c0 + j] + qkv_b[d + c0 + j]
                            )
                        sc[k] = acc * att
                        top = max(top, sc[k])
                    tot = np.float32(0.0)
                    for k in range(first, n):
                        sc[k] = np.exp(sc[k] - top)
                        tot += sc[k]
                    for j in range(dh):
                        att_out[row, c0 + j] = np.float32(0.0)
                    for k in range(first, n):
                        wk = sc[k] / tot
                        for j in range(dh):
                            att_out[row, c0 + j] += wk * (
                                qkv[at[o, k], 2 * d + c0 + j] + qkv_b[2 * d + c0 + j]
                            )
        y = att_out @ proj_w.T
        z = np.empty((rows, d), np.float32)
        for r in range(rows):
            for j in range(d):
                y[r, j] += proj_b[j] + resid[r, j]
            _layer_norm_row(y[r], ln2[0], ln2[1], ln2[2], z[r])
        f = z @ ff1_w.T
        for r in range(rows):
            for j in range(f.shape[1]):
                v = f[r, j] + ff1_b[j]
                f[r, j] = (
                    np.float32(0.5)
                    * v
                    * (np.float32(1.0) + np.float32(math.erf(v * 0.7071067811865476)))
                )
        g = f @ ff2_w.T
        out = np.zeros(d, np.float32)
        for r in range(rows):
            for j in range(d):
                y[r, j] += g[r, j] + ff2_b[j] + lt[j]
            _layer_norm_row(y[r], ln[0], ln[1], ln[2], z[r])
            wt = weights[r % n_starts] / np.float32(orders)
            for j in range(d):
                out[j] += wt * z[r, j]
        return out

    STATE = _state
