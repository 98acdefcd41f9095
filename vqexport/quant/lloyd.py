"""The two k-means every quantizer shares: exact-enough 1-D k-means and batched vector Lloyd.

1-D: the weights are summarised once in a fine histogram (counts, sums and squared sums
per bin). In 1-D a cluster is an interval, so with prefix sums over the bins one Lloyd
step costs O(k log B) instead of O(N k): we can afford several seeds and run each to
convergence. A last exact step on the real weights removes the binning error.
"""
from __future__ import annotations

import numpy as np

HIST_BINS = 1 << 20
HIST_CHUNK = 1 << 22
CHUNK = 1 << 18  # values per pass: 1 MB temporaries, reused from the heap instead of fresh pages


def kmeans1d(x: np.ndarray, k: int, seed: int, max_iter: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Cluster scalars. Returns (sorted centroids float32 [k], indices uint16 like x.ravel())."""
    cent = kmeans1d_centroids(x, k, seed, max_iter)
    return cent, assign1d(np.ravel(x), cent)


def kmeans1d_centroids(x: np.ndarray, k: int, seed: int, max_iter: int = 300) -> np.ndarray:
    """The sorted float32 centroids of scalar k-means; assign with assign1d (nearest centroid)."""
    x = np.ascontiguousarray(x, dtype=np.float32).ravel()
    if k > x.size:
        raise ValueError(f"k={k} is larger than the {x.size} values to cluster")
    pts, cnt, s1, s2 = _summarise(x)
    if x.size <= HIST_BINS and pts.size <= k:
        # No more distinct values than centroids: each value is its own centroid, error 0.
        return np.concatenate([pts, np.full(k - pts.size, pts[-1])]).astype(np.float32)
    C, S, Q = (np.concatenate([[0.0], np.cumsum(a)]) for a in (cnt, s1, s2))
    rng = np.random.default_rng(seed)
    best, best_sse = None, np.inf
    for init in _inits(pts, cnt, k, rng):
        cent, sse = _lloyd_sorted(pts, C, S, Q, np.sort(init), max_iter)
        if sse < best_sse:
            best, best_sse = cent, sse
    # One exact update on the real weights (a Lloyd step can only lower the error), chunk by
    # chunk so that no index array of the whole layer is ever held.
    counts = np.zeros(k)
    sums = np.zeros(k)
    for lo, idx in zip(range(0, x.size, CHUNK), _assign_chunks(x, best)):
        part = x[lo:lo + CHUNK]
        counts += np.bincount(idx, minlength=k)
        sums += np.bincount(idx, weights=part, minlength=k)
    filled = counts > 0
    best = best.copy()
    best[filled] = sums[filled] / counts[filled]
    # The caller reassigns to these moved centroids, which can only lower the error again.
    return np.sort(best).astype(np.float32)


def assign1d_packed(x: np.ndarray, centroids: np.ndarray, bits: int) -> bytes:
    """Nearest-centroid indices of x, packed as they are computed (never the whole uint16 array)."""
    from ..bitpack import pack_stream

    return pack_stream(_assign_chunks(np.ravel(x), centroids), bits)


def assign1d(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid of each scalar, given centroids in ascending order.

    The same answer as np.searchsorted(midpoints, x), about 3x faster: a value's bin among
    ASSIGN_BINS equal bins over the span of the midpoints looks its centroid up in a table, and
    only values in the few bins a midpoint cuts are searched. (searchsorted costs a branchy binary
    search per value, 15-20 ns, which made it most of a 100 M-weight k-means.)
    """
    x = np.ravel(x)
    out = np.empty(x.size, dtype=np.uint16)
    lo = 0
    for part in _assign_chunks(x, centroids):
        out[lo:lo + part.size] = part
        lo += part.size
    return out


def _assign_chunks(x: np.ndarray, centroids: np.ndarray):
    """assign1d of x, CHUNK values at a time (one bin table for all of them)."""
    bounds = (centroids[1:].astype(np.float64) + centroids[:-1]) / 2
    table = _BinTable.build(bounds, x) if x.size > ASSIGN_BINS else None
    for lo in range(0, x.size, CHUNK):
        part = x[lo:lo + CHUNK]
        yield np.searchsorted(bounds, part, side="left") if table is None else table.lookup(part)


ASSIGN_BINS = 1 << 16


class _BinTable:
    """Centroid of each of ASSIGN_BINS bins, and which bins a midpoint may cut.

    The bins span the midpoints (plus a margin), not the data: heavy tails would otherwise
    crowd every midpoint into a few bins. Values beyond the span fall in the first or last
    bin, which no midpoint cuts, and that bin's centroid is theirs too.
    """

    def __init__(self, bounds, lo, scale):
        self.bounds, self.lo, self.scale = bounds, np.float32(lo), np.float32(scale)
        centres = lo + (np.arange(ASSIGN_BINS) + 0.5) / scale
        self.centroid = np.searchsorted(bounds, centres, side="left").astype(np.uint16)
        # The float32 bin of a value is within a hundredth of a bin of its exact position, so
        # a midpoint can only split values of its own bin or a neighbour.
        self.mixed = np.zeros(ASSIGN_BINS, dtype=bool)
        cut = np.floor((bounds - lo) * scale).astype(np.int64)
        for step in (-1, 0, 1):
            self.mixed[np.clip(cut + step, 0, ASSIGN_BINS - 1)] = True

    @classmethod
    def build(cls, bounds, x):
        if bounds.size * 16 > ASSIGN_BINS or not np.isfinite(x.min() + x.max()):
            return None  # so many centroids that most bins are cut, or NaNs/infinities
        margin = max(float(bounds[-1] - bounds[0]), abs(float(bounds[0])), 1e-30) / 64
        lo, hi = float(bounds[0]) - margin, float(bounds[-1]) + margin
        return cls(bounds, lo, ASSIGN_BINS / (hi - lo))

    def lookup(self, part):
        with np.errstate(over="ignore"):  # a huge outlier becomes inf, which the clip handles
            f = (part - self.lo) * self.scale
        np.clip(f, 0, ASSIGN_BINS - 1, out=f)  # in float: a far outlier must not overflow int32
        b = f.astype(np.int32)
        out = self.centroid[b]
        near = np.flatnonzero(self.mixed[b])
        out[near] = np.searchsorted(self.bounds, part[near], side="left")
        return out


def _summarise(x: np.ndarray):
    """Weighted points in ascending order: exact unique values when few, else histogram bins.

    Bins carry their centre as their value: with 2**20 bins that is exact to a millionth of
    the range, and kmeans1d_centroids ends with an exact update on the real weights anyway.
    Counting alone (no weighted bincounts) keeps this pass cheap on 100 M-weight layers.
    """
    if x.size <= HIST_BINS:
        pts, cnt = np.unique(x.astype(np.float64), return_counts=True)
        cnt = cnt.astype(np.float64)
        return pts, cnt, pts * cnt, pts * pts * cnt
    lo, hi = float(x.min()), float(x.max())
    scale = np.float32(HIST_BINS / (hi - lo)) if hi > lo else np.float32(0)
    cnt = np.zeros(HIST_BINS)
    for a in range(0, x.size, HIST_CHUNK):  # larger: each pass adds up a whole histogram
        b = ((x[a:a + HIST_CHUNK] - np.float32(lo)) * scale).astype(np.int32)
        np.minimum(b, HIST_BINS - 1, out=b)
        cnt += np.bincount(b, minlength=HIST_BINS)
    keep = cnt > 0
    pts = lo + (np.flatnonzero(keep) + 0.5) / (scale if scale else 1.0)
    cnt = cnt[keep]
    return pts, cnt, pts * cnt, pts * pts * cnt


def _inits(pts, cnt, k, rng, n_seeds: int = 8):
    """Quantiles, an even grid, and several greedy k-means++ seedings.

    A 1-D Lloyd run costs milliseconds here, so trying several starts is cheap; the
    seeding itself runs on at most COARSE merged points to stay cheap on big layers.
    """
    cdf = np.cumsum(cnt) / cnt.sum()
    yield pts[np.minimum(np.searchsorted(cdf, (np.arange(k) + 0.5) / k), pts.size - 1)]
    yield np.linspace(pts[0], pts[-1], k)
    cp, cc = _coarsen(pts, cnt)
    if 4 * k > cp.size:  # seeding cannot tell that many centroids apart on the coarse points
        return
    for _ in range(n_seeds):
        yield _greedy_kmeanspp_1d(cp, cc, k, rng)


COARSE = 1 << 14


def _coarsen(pts, cnt):
    """Merge neighbouring points into at most COARSE groups of about equal weight."""
    if pts.size <= COARSE:
        return pts, cnt
    group = np.minimum((np.cumsum(cnt) - cnt) * COARSE // cnt.sum(), COARSE - 1).astype(np.int64)
    n = np.bincount(group, weights=cnt)
    s = np.bincount(group, weights=pts * cnt)
    keep = n > 0
    return s[keep] / n[keep], n[keep]


def _greedy_kmeanspp_1d(pts, cnt, k, rng):
    """k-means++ that draws 2 + log k candidates a step and keeps the one lowering the cost most."""
    trials = 2 + int(np.log(k))
    chosen = np.empty(k)
    chosen[0] = pts[rng.choice(pts.size, p=cnt / cnt.sum())]
    d2 = (pts - chosen[0]) ** 2
    for j in range(1, k):
        w = d2 * cnt
        total = w.sum()
        if total <= 0:
            chosen[j:] = chosen[j - 1]
            break
        cand = pts[np.minimum(np.searchsorted(np.cumsum(w), rng.random(trials) * total), pts.size - 1)]
        nd = np.minimum(d2[None, :], (pts[None, :] - cand[:, None]) ** 2)
        best = int(np.argmin(nd @ cnt))
        chosen[j] = cand[best]
        d2 = nd[best]
    return chosen


def _lloyd_sorted(pts, C, S, Q, cent, max_iter):
    cuts = None
    for _ in range(max_iter):
        bounds = (cent[1:] + cent[:-1]) / 2
        new_cuts = np.concatenate([[0], np.searchsorted(pts, bounds, side="left"), [pts.size]])
        if cuts is not None and np.array_equal(new_cuts, cuts):
            break
        cuts = new_cuts
        n = C[cuts[1:]] - C[cuts[:-1]]
        s = S[cuts[1:]] - S[cuts[:-1]]
        filled = n > 0
        cent = cent.copy()
        cent[filled] = s[filled] / n[filled]
        cent = np.sort(cent)
    n = C[cuts[1:]] - C[cuts[:-1]]
    s = S[cuts[1:]] - S[cuts[:-1]]
    q = Q[cuts[1:]] - Q[cuts[:-1]]
    sse = float(np.sum(q - np.divide(s * s, n, out=np.zeros_like(s), where=n > 0)))
    return cent, sse


def _companded(xs, lo, hi, k, bins: int = 64):
    """Per-row start at the quantiles of density**(1/3), the high-resolution optimum for MSE."""
    s, N = xs.shape
    width = np.maximum(hi - lo, 1e-30)
    b = np.minimum(((xs - lo) / width * bins).astype(np.int64), bins - 1)
    counts = np.zeros((s, bins))
    np.add.at(counts, (np.repeat(np.arange(s), N), b.ravel()), 1.0)
    mass = np.cumsum(np.cbrt(counts), axis=1)
    mass /= mass[:, -1:]
    targets = (np.arange(k) + 0.5) / k
    pos = np.stack([np.interp(targets, np.concatenate([[0.0], mass[j]]), np.linspace(0, 1, bins + 1))
                    for j in range(s)])
    return lo + pos * width


def kmeans1d_batched(X: np.ndarray, k: int, max_iter: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Scalar k-means on each row of X [s, N] at once (pq with d=1). Returns [s, k] and [s, N].

    The sorted rows are laid end to end, each shifted by its row number times a span wider
    than any row, so one searchsorted finds every cluster boundary of every row, and prefix
    sums give the cluster means: each Lloyd step costs O(s k log(sN)). Starts from the
    quantiles and from an even grid, and keeps the better of the two per row.
    """
    s, N = X.shape
    if k > N:
        raise ValueError(f"k={k} is larger than the {N} values to cluster")
    order = np.argsort(X, axis=1, kind="stable")
    xs = np.take_along_axis(X, order, axis=1).astype(np.float64)
    lo, hi = xs[:, :1], xs[:, -1:]
    span = float((hi - lo).max()) * 2 + 1.0
    rowoff = np.arange(s)[:, None] * span
    flat = (xs - lo + rowoff).ravel()  # ascending across the whole array
    csum = np.concatenate([[0.0], np.cumsum(xs.ravel())])
    csq = np.concatenate([[0.0], np.cumsum(xs.ravel() ** 2)])
    base = np.arange(s)[:, None] * N

    def cuts_of(cent):
        bounds = (cent[:, 1:] + cent[:, :-1]) / 2 - lo + rowoff
        inner = np.searchsorted(flat, bounds.ravel(), side="left").reshape(s, k - 1)
        return np.concatenate([base, inner, base + N], axis=1)

    def solve(cent):
        cuts = None
        for _ in range(max_iter):
            new = cuts_of(cent)
            if cuts is not None and np.array_equal(new, cuts):
                break
            cuts = new
            n = np.diff(cuts, axis=1)
            sums = csum[cuts[:, 1:]] - csum[cuts[:, :-1]]
            cent = np.where(n > 0, sums / np.maximum(n, 1), cent)
            cent.sort(axis=1)
        cuts = cuts_of(cent)
        n = np.diff(cuts, axis=1)
        sums = csum[cuts[:, 1:]] - csum[cuts[:, :-1]]
        sq = csq[cuts[:, 1:]] - csq[cuts[:, :-1]]
        sse = np.sum(sq - np.where(n > 0, sums * sums / np.maximum(n, 1), 0), axis=1)
        return cent, sse

    quant = xs[:, np.minimum(((np.arange(k) + 0.5) / k * N).astype(int), N - 1)]
    grid = lo + (hi - lo) * np.linspace(0, 1, k)[None, :]
    best_c, best_e = solve(quant)
    for init in (grid, _companded(xs, lo, hi, k)):
        c, e = solve(init)
        better = e < best_e
        best_c[better], best_e[better] = c[better], e[better]
    cent = best_c
    cuts = cuts_of(cent) - base
    # Cluster of each sorted value, then back to the original order of each row.
    sorted_idx = (np.arange(N)[None, :, None] >= cuts[:, None, 1:-1]).sum(axis=2) if k <= 16 else \
        np.stack([np.searchsorted(cuts[j, 1:-1], np.arange(N), side="right") for j in range(s)])
    idx = np.empty((s, N), dtype=np.uint16)
    np.put_along_axis(idx, order, sorted_idx.astype(np.uint16), axis=1)
    return cent.astype(np.float32), idx


CHUNK_ELEMENTS = 2e6  # distance scores per chunk: small enough to stay in cache between passes


def lloyd(X: np.ndarray, k: int, seed: int, iters: int = 25, progress=None, tol: float = 1e-3
          ) -> tuple[np.ndarray, np.ndarray]:
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
        if progress is not None:
            progress(s)
        return codebooks, indices
    step = max(1, int(CHUNK_ELEMENTS // (N * max(k, d))))
    for a in range(0, s, step):
        b = min(s, a + step)
        codebooks[a:b], indices[a:b] = _lloyd_chunk(X[a:b], k, rng, iters, tol)
        if progress is not None:
            progress(b - a)
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
        nd = np.maximum(x2 - 2 * np.einsum("snd,sd->sn", X, C[:, j]) + np.einsum("sd,sd->s", C[:, j], C[:, j])[:, None], 0)
        d2 = np.minimum(d2, nd)
    return C
