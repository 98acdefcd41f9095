"""Data-aware fitting: refit a plainly fitted tensor to what its layer's inputs make of its error.

The plain fit minimises ||W - W'||^2. A layer's output error on its inputs x is
tr((W - W') H (W - W')^T) with H = E[x x^T] (stats.InputStats), so two changes follow:

1. The codebook: Lloyd iterations that weight each weight's error by H's diagonal, the energy of
   the input column it multiplies (a column fed by a dead pixel costs nothing), starting from
   the plain fit's codebook.
2. The indices: GPTQ-style error feedback (Frantar et al. 2023, as GPTVQ does for vector
   codebooks). Columns are assigned in order, each to its nearest entry, and the error made on a
   column is pushed onto the columns not yet assigned, through H's inverse, so that those can
   cancel it. This is what H's off-diagonal terms are for: ReLU inputs are all positive and
   correlated, and an error of the same sign on every column (k-means with k=2 splits a skewed
   layer away from 0) moves every output unit together.

The decode is unchanged: only the codebook values and the indices differ from the plain fit's.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..bitpack import bits_for
from ..ir import CompressedTensor, packed_section
from ..methods import registry
from ..methods.base import store_codebook
from .stats import InputStats

METHODS = ("binary", "kmeans", "pq", "vq")  # the codebook methods whose decode is a per-column lookup
DAMP = 0.01  # of H's mean diagonal added to it, as GPTQ does, so that H is safely invertible
BLOCK = 128  # columns updated at once; later columns get one matrix product per block
LLOYD_ITERS = 20


def applies(q) -> bool:
    """Whether a layer of this method config can be refitted."""
    return q.method in METHODS and not getattr(q, "rows", False)


def applies_to(t: CompressedTensor) -> bool:
    return t.method in METHODS and not t.rows


def unit(t: CompressedTensor) -> int:
    """Columns assigned together: one for scalar codebooks, d for sub-vector ones."""
    return t.d if t.method in ("pq", "vq") else 1


def refit(w: np.ndarray, t: CompressedTensor, stats: InputStats, feedback: bool = True) -> CompressedTensor:
    """t (fitted plainly to w) refitted to the layer's inputs; same method, shapes and bits."""
    m, n = t.matrix
    w = w.reshape(m, n).astype(np.float64)
    G = stats.outer.shape[0]
    conv_group = np.arange(m) // (m // G)  # the conv group (and so the statistics) of each row
    H = stats.second
    importance = np.einsum("gii->gi", H)[conv_group]  # [m, n]: diag(H) of each row's group
    cb_group = np.arange(m) // (m // t.groups)
    codebook = _weighted_codebook(w, t, importance, cb_group)
    if _dtype(t) == "float16":  # assign to the entries as they will be stored
        codebook = codebook.astype(np.float16).astype(np.float64)
    if feedback:
        idx = np.empty((m, n // unit(t)), dtype=np.int64)
        for g in range(G):
            rows = conv_group == g
            idx[rows] = _feedback_assign(w[rows], H[g], codebook, cb_group[rows], t)
    else:
        idx = _nearest_all(w, codebook, cb_group, t)
    return _rebuilt(t, codebook, idx)


def _cb_view(codebook: np.ndarray, t: CompressedTensor) -> np.ndarray:
    """The codebook as [groups, segments, k, u]: one entry list per (group, column unit)."""
    if t.method in ("binary", "kmeans"):
        return codebook.reshape(t.groups, 1, -1, 1)
    if t.method == "vq":
        return codebook.reshape(t.groups, 1, t.k, t.d)
    return codebook.reshape(t.groups, -1, t.k, t.d)  # pq by columns: [g, s, k, d]


def _segment(t: CompressedTensor, j: int) -> int:
    return j if t.method == "pq" else 0


def _weighted_codebook(w, t, importance, cb_group) -> np.ndarray:
    """Lloyd iterations minimising sum importance * (w - w')^2, from the plain fit's codebook."""
    cb = t.codebook().astype(np.float64)
    view = _cb_view(cb, t)  # a view: updated in place
    u = unit(t)
    m, n = w.shape
    if t.method == "binary":  # the scale alone: alpha = weighted mean of |w|
        for g in range(t.groups):
            rows = cb_group == g
            a = np.sum(importance[rows] * np.abs(w[rows])) / max(np.sum(importance[rows]), 1e-300)
            view[g, 0, :, 0] = [-a, a]
        return cb
    for g in range(t.groups):
        rows = cb_group == g
        for s in range(view.shape[1]):
            cols = np.arange(n // u) if t.method != "pq" else np.array([s])
            x = w[rows][:, (cols[:, None] * u + np.arange(u)).ravel()].reshape(-1, u)
            h = importance[rows][:, (cols[:, None] * u + np.arange(u)).ravel()].reshape(-1, u)
            view[g, s] = _weighted_lloyd(x, h, view[g, s])
    return cb


def _weighted_lloyd(x, h, c) -> np.ndarray:
    """Centroids c [k, u] minimising sum h * (x - c[nearest])^2 over points x [N, u], weights h.
    Assignment by weighted distance; a centroid with no weight keeps its place."""
    c = c.copy()
    k = c.shape[0]
    for _ in range(LLOYD_ITERS):
        # sum_u h (x - c)^2 = sum h x^2 - 2 (h x) . c + h . c^2; the first term cannot change the winner
        scores = h @ (c * c).T - 2 * (h * x) @ c.T
        lab = scores.argmin(axis=1)
        num = np.stack([np.bincount(lab, weights=(h * x)[:, j], minlength=k) for j in range(c.shape[1])], 1)
        den = np.stack([np.bincount(lab, weights=h[:, j], minlength=k) for j in range(c.shape[1])], 1)
        new = np.where(den > 0, num / np.where(den > 0, den, 1), c)
        if np.allclose(new, c, rtol=0, atol=1e-12):
            break
        c = new
    return c


def _nearest(block: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """block [r, u], entries [r, k, u] (each row's own entries) -> index of the nearest per row."""
    return np.einsum("rku,rku->rk", entries - block[:, None, :], entries - block[:, None, :]).argmin(axis=1)


def _entries(view, cb_group, t, j) -> np.ndarray:
    return view[cb_group, _segment(t, j)]  # [r, k, u]


def _nearest_all(w, codebook, cb_group, t) -> np.ndarray:
    view, u = _cb_view(codebook, t), unit(t)
    return np.stack([_nearest(w[:, j * u:(j + 1) * u], _entries(view, cb_group, t, j))
                     for j in range(w.shape[1] // u)], axis=1)


def _feedback_assign(w, H, codebook, cb_group, t) -> np.ndarray:
    """Indices [r, n / u] for the rows w [r, n] of one conv group, by GPTQ's column order with error
    feedback through the Cholesky factor of H^-1 (upper, so that row j holds what column j's error
    does to the columns after it)."""
    view, u = _cb_view(codebook, t), unit(t)
    w = w.copy()
    r, n = w.shape
    H = H.copy()
    dead = np.diag(H) <= 0
    H[dead, dead] = 1.0  # a column no input reaches: its error costs nothing, and it pushes none
    H[np.diag_indices(n)] += DAMP * np.mean(np.diag(H))
    U = np.linalg.cholesky(np.linalg.inv(H)).T  # upper: H^-1 = U^T U
    idx = np.empty((r, n // u), dtype=np.int64)
    block = max(u, (BLOCK // u) * u)
    for a in range(0, n, block):
        b = min(n, a + block)
        err = np.zeros((r, b - a))
        for j in range(a, b, u):
            entries = _entries(view, cb_group, t, j // u)
            pick = _nearest(w[:, j:j + u], entries)
            idx[:, j // u] = pick
            q = entries[np.arange(r), pick]  # [r, u]
            for c in range(u):
                col = j + c
                e = (w[:, col] - q[:, c]) / U[col, col]
                w[:, col + 1:b] -= np.outer(e, U[col, col + 1:b])
                err[:, col - a] = e
        w[:, b:] -= err @ U[a:b, b:]
    return idx


def _rebuilt(t: CompressedTensor, codebook: np.ndarray, idx: np.ndarray) -> CompressedTensor:
    """t with the new codebook and indices, laid out as its method stores them."""
    stored = store_codebook(codebook.astype(np.float32), _dtype(t))
    if t.method == "pq":  # indices [s, m]: segment-major
        flat = idx.T
    else:  # binary, kmeans, vq: row-major over the row's columns (units)
        flat = idx.ravel()
    section = packed_section(np.ascontiguousarray(flat).astype(np.uint32), bits_for(t.k))
    out = dataclasses.replace(t, sections={"codebook": stored, "indices": section})
    registry.get(t.method).layout(out)  # the shapes its decode expects
    return out


def _dtype(t: CompressedTensor) -> str:
    return t.sections["codebook"].dtype
