"""Batched vector k-means (Lloyd with k-means++ seeding), shared by pq and rq.

Many independent problems (pq's segments, rq's one stage) run as one batch, chunked so the
distance block stays in cache. Scalar problems (d == 1) go to kmeans1d, which is exact.
"""
from __future__ import annotations

import numpy as np

from .kmeans1d import kmeans1d_batched

CHUNK_ELEMENTS = 2e6  # distance scores per chunk: small enough to stay in cache between passes


def lloyd(X: np.ndarray, k: int, seed: int, iters: int = 25, tol: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Batched k-means: X is [s, N, d], s independent problems of N vectors each.

    Returns codebooks [s, k, d] float32 and indices [s, N] uint16. Init is k-means++;
    empty clusters keep their previous centroid. Iteration stops when fewer than `tol` of the
    assignments change. For d == 1 each problem is scalar k-means, solved by kmeans1d instead.
    Work is chunked over s so that the
    [chunk, N, k] distance block stays small (CHUNK_ELEMENTS) and in cache.
    """
    X = np.asarray(X, dtype=np.float32)
    s, N, d = X.shape
    if k > N:
        raise ValueError(f"k={k} is larger than the {N} vectors to cluster")
    rng = np.random.default_rng(seed)
    codebooks = np.empty((s, k, d), dtype=np.float32)
    indices = np.empty((s, N), dtype=np.uint16)
    if d == 1:
        codebooks[:, :, 0], indices[:] = kmeans1d_batched(X[:, :, 0], k)
        return codebooks, indices
    step = max(1, int(CHUNK_ELEMENTS // (N * max(k, d))))
    for a in range(0, s, step):
        b = min(s, a + step)
        codebooks[a:b], indices[a:b] = _lloyd_chunk(X[a:b], k, rng, iters, tol)
    return codebooks, indices


KMEANSPP_MAX_K = 32  # above this, k sequential seeding passes cost more than Lloyd itself


def _lloyd_chunk(X, k, rng, iters, tol):
    s, N, d = X.shape
    x2 = np.einsum("snd,snd->sn", X, X)
    if k <= KMEANSPP_MAX_K:
        C = _kmeanspp(*_seeding_sample(X, x2, k, rng), k, rng)
    else:
        pick = np.argsort(rng.random((s, N)), axis=1)[:, :k]  # k distinct points per problem
        C = X[np.arange(s)[:, None], pick].copy()
    flat_base = (np.arange(s) * k)[:, None]
    # Cluster sums: short vectors (pq) by one bincount per coordinate over a transposed copy of
    # the chunk; long ones (rq rows of 25,088) by a one-hot [k, N] matmul per problem, which
    # needs no copy of X at all (the copy would cost as much memory as the layer).
    columns = np.ascontiguousarray(X.transpose(2, 0, 1).reshape(d, -1)) if d <= k else None
    # Short vectors: the iterations use the packed-minimum assignment on X^T (one more copy of
    # the chunk, so only when d is small); the final assignment below is the exact one.
    xt = _augmented_points(X, x2) if d <= k else None
    idx = None
    for _ in range(iters):
        new_idx = _nearest(X, x2, C) if xt is None else _nearest_packed(xt, C)
        if idx is not None and np.count_nonzero(new_idx != idx) <= tol * new_idx.size:
            break
        idx = new_idx
        flat = (idx + flat_base).ravel()
        counts = np.bincount(flat, minlength=s * k).reshape(s, k)
        sums = _cluster_sums(X, idx, flat, columns, k)
        filled = counts > 0
        C[filled] = (sums[filled] / counts[filled][:, None]).astype(np.float32)
    # The stored assignment must be nearest to the final centroids.
    idx = _nearest(X, x2, C)
    return C, idx.astype(np.uint16)


def _cluster_sums(X, idx, flat, columns, k):
    s, N, d = X.shape
    if columns is not None:
        sums = np.stack([np.bincount(flat, weights=columns[j], minlength=s * k) for j in range(d)], axis=1)
        return sums.reshape(s, k, d)
    sums = np.empty((s, k, d), dtype=np.float64)
    onehot = np.zeros((k, N), dtype=np.float32)
    for i in range(s):
        onehot[:] = 0
        onehot[idx[i], np.arange(N)] = 1
        sums[i] = onehot @ X[i]
    return sums


def _nearest(X, x2, C):
    """argmin_j ||x - c_j||^2 = argmin_j (||c_j||^2 - 2 x.c_j): ||x||^2 cannot change the winner,
    so it is left out, and the scores are built in place in one [s, N, k] buffer."""
    scores = np.matmul(X, C.transpose(0, 2, 1))
    scores *= -2
    scores += np.einsum("skd,skd->sk", C, C)[:, None, :]
    return scores.argmin(axis=2)


def _augmented_points(X, x2):
    """[s, d + 2, N]: the points as columns, then a row of ones and a row of |x|^2, so that one
    matmul with [-2c, |c|^2, 1] gives every squared distance |x - c|^2 at once."""
    s, N, d = X.shape
    xt = np.empty((s, d + 2, N), dtype=np.float32)
    xt[:, :d] = X.transpose(0, 2, 1)
    xt[:, d] = 1
    xt[:, d + 1] = x2
    return xt


def _nearest_packed(xt, C):
    """Nearest centroid for the points of _augmented_points; about 1.5x faster than argmin for small k.

    numpy's argmin over a short last axis costs a call per point. Instead, the squared
    distances (from one matmul) get the centroid number written into their lowest log2(k)
    mantissa bits, and one elementwise minimum over the k rows finds the winner with its
    number attached: non-negative float32 bit patterns order like int32. A distance that
    rounding made slightly negative is a point on its centroid, and wins as it should.
    Distances that agree to within 2**(log2(k) - 23) of each other may resolve either way;
    the iterations do not care, and the stored assignment is recomputed exactly by _nearest.
    """
    s, k, d = C.shape
    bits = max(1, int(k - 1).bit_length())
    ca = np.empty((s, k, d + 2), dtype=np.float32)
    ca[:, :, :d] = C * np.float32(-2)
    ca[:, :, d] = np.einsum("skd,skd->sk", C, C)
    ca[:, :, d + 1] = 1
    packed = np.matmul(ca, xt).view(np.int32)  # [s, k, N] squared distances, as bits
    packed &= np.int32(~((1 << bits) - 1))
    packed |= np.arange(k, dtype=np.int32)[None, :, None]
    return np.minimum.reduce(packed, axis=1) & ((1 << bits) - 1)


SEEDING_POINTS_PER_CENTROID = 32


def _seeding_sample(X, x2, k, rng):
    """At most SEEDING_POINTS_PER_CENTROID * k points per problem for k-means++ to seed from.

    k-means++ takes k sequential passes over its points; on all 4,096 points of a VGG layer's
    segments it was a sixth of the whole pq fit, and Lloyd's 25 iterations over every point
    make up for a seeding on a sample (the final error is within noise of seeding on all).
    """
    s, N, _ = X.shape
    m = SEEDING_POINTS_PER_CENTROID * k
    if N <= m:
        return X, x2
    pick = np.sort(rng.choice(N, size=m, replace=False))
    return X[:, pick], x2[:, pick]


def _kmeanspp(X, x2, k, rng):
    """k-means++ seeding for each of the s problems at once."""
    s, N, d = X.shape
    rows = np.arange(s)
    C = np.empty((s, k, d), dtype=np.float32)
    first = rng.integers(N, size=s)
    C[:, 0] = X[rows, first]
    d2 = np.maximum(x2 - 2 * np.einsum("snd,sd->sn", X, C[:, 0]) + np.einsum("sd,sd->s", C[:, 0], C[:, 0])[:, None], 0)
    for j in range(1, k):
        total = d2.sum(axis=1, keepdims=True)
        # Inverse-CDF sampling of one point per problem; a problem with all points equal picks any.
        u = rng.random(s)[:, None] * total
        pick = np.minimum((np.cumsum(d2, axis=1) < u).sum(axis=1), N - 1)
        C[:, j] = X[rows, pick]
        c2 = np.einsum("sd,sd->s", C[:, j], C[:, j])[:, None]
        nd = np.maximum(x2 - 2 * np.einsum("snd,sd->sn", X, C[:, j]) + c2, 0)
        d2 = np.minimum(d2, nd)
    return C
