"""Scalar k-means, exact enough: for kmeans (one codebook per tensor) and pq with d=1.

The weights are summarised once (exact unique values, or a fine histogram). In 1-D a cluster
is an interval, so the optimum of a few thousand merged points comes from a dynamic programme
(kmeans1d_dp), refined near its boundaries on the fine points; with prefix sums one Lloyd step
then costs O(k log B) instead of O(N k), and a last exact step on the real weights removes the
binning error.
"""
from __future__ import annotations

import numpy as np

from ..util.parallel import thread_map, threads
from .kmeans1d_dp import interval_means, kmeans1d_dp, prefix_sums

# Up to EXACT_MAX weights the summary is their exact unique values, beyond it HIST_BINS bins: 2**18
# (was 2**20) fits VGG-16's fc6 in groups of 16 rows 1.2x faster, and the zoo's errors moved by
# at most 2.4e-8 relative (either way), since the exact step on the real weights removes the binning.
HIST_BINS = 1 << 18
EXACT_MAX = 1 << 18
HIST_CHUNK = 1 << 22
CHUNK = 1 << 18  # values per pass: 1 MB temporaries, reused from the heap instead of fresh pages


def kmeans1d(x: np.ndarray, k: int, seed: int, max_iter: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Cluster scalars. Returns (sorted centroids float32 [k], indices uint16 like x.ravel())."""
    cent = kmeans1d_centroids(x, k, seed, max_iter)
    return cent, assign1d(np.ravel(x), cent)


def kmeans1d_centroids(x: np.ndarray, k: int, seed: int, max_iter: int = 300) -> np.ndarray:
    """The sorted float32 centroids of scalar k-means; assign with assign1d (nearest centroid)."""
    return kmeans1d_centroids_many([x], k, seed, max_iter)[0]


def kmeans1d_centroids_many(blocks, k: int, seed: int, max_iter: int = 300) -> list:
    """kmeans1d_centroids of each block (the row groups of a grouped fit), the costly part batched.

    Each block is summarised (exact unique values or a fine histogram) and merged into at most
    2 * COARSE_DP points; the DP clusters those optimally, then the fine points with each cut
    near its coarse place; Lloyd on the fine summary finishes, and for a histogram one exact step
    on the real weights. Each step can only lower the error. Blocks go through in batches of at
    most BATCH weights (or one block), so the summaries of a huge layer are never all held, on
    up to util.parallel.threads() threads. `seed` is kept for the interface: nothing here is random.
    """
    blocks = list(blocks)
    # Each thread gets a share of about equal cost (largest first, to the least loaded), which it
    # fits in batches. Batched fits equal one-by-one ones bit for bit, so neither the batches nor
    # the threads change the answer.
    cost = [_fit_cost(np.size(b)) for b in blocks]
    shares: list[list[int]] = [[] for _ in range(min(threads(), len(blocks)) or 1)]
    load = [0.0] * len(shares)
    for i in sorted(range(len(blocks)), key=lambda i: -cost[i]):
        j = load.index(min(load))
        shares[j].append(i)
        load[j] += cost[i]

    def fit_share(share):
        out, batch, size = {}, [], 0
        for n, i in enumerate(sorted(share)):
            batch.append(i)
            size += np.size(blocks[i])
            if size >= BATCH or len(batch) >= BATCH_PROBLEMS or n == len(share) - 1:
                out.update(zip(batch, _centroids_batch([blocks[j] for j in batch], k, max_iter), strict=True))
                batch, size = [], 0
        return out

    done = {}
    for part in thread_map(fit_share, shares):
        done.update(part)
    return [done[i] for i in range(len(blocks))]


def _fit_cost(size: int) -> float:
    """A block's fit time in weights: a weight's passes, and the first DP on up to 2 * COARSE_DP
    points, which costs about as much as 60,000 weights' passes (measured on the zoo)."""
    return size + 60000 * min(size, 2 * COARSE_DP) / (2 * COARSE_DP)


# A batch's DP arrays should stay near the caches: about 2**20 weights or 64 problems (each up to
# 2 * COARSE_DP points in the first DP) were the fastest on the torchvision zoo, per tensor and
# grouped alike (4x those sizes: up to 1.2x slower grouped). A bigger layer is a batch of its own.
BATCH = 1 << 20
BATCH_PROBLEMS = 64


def _centroids_batch(blocks, k, max_iter):
    xs = [np.ascontiguousarray(b, dtype=np.float32).ravel() for b in blocks]
    out: list = [None] * len(xs)
    summaries, todo = [], []
    for j, x in enumerate(xs):
        if k > x.size:
            raise ValueError(f"k={k} is larger than the {x.size} values to cluster")
        pts, cnt = _summarise(x)
        if x.size <= EXACT_MAX and pts.size <= k:
            # No more distinct values than centroids: each value is its own centroid, error 0.
            out[j] = np.concatenate([pts, np.full(k - pts.size, pts[-1])]).astype(np.float32)
            continue
        summaries.append((pts, cnt))
        todo.append(j)
    if not todo:
        return out
    sizes = np.array([p.size for p, _ in summaries])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    pts = np.concatenate([p for p, _ in summaries])
    cnt = np.concatenate([c for _, c in summaries])
    prefix = prefix_sums(pts, cnt, offsets)  # once, for the coarsening, both DPs, the means and Lloyd
    cents = _refined_dp(pts, cnt, offsets, prefix, k)
    C, S, Q, means = prefix
    for p, (j, cent) in enumerate(zip(todo, cents, strict=True)):
        lo, hi = offsets[p], offsets[p + 1]
        slots = slice(lo + p, hi + p + 1)
        cent, _ = _lloyd_sorted(pts[lo:hi], C[slots], S[slots], Q[slots], np.sort(cent), max_iter, means[p])
        # A summary of exact unique values is the weights themselves, and Lloyd on it has converged:
        # only a histogram's binning is left for a step on the real weights to remove.
        out[j] = _exact_step(xs[j], cent, k) if xs[j].size > EXACT_MAX else np.sort(cent).astype(np.float32)
    return out


def _refined_dp(pts, cnt, offsets, prefix, k):
    """Optimal k clusters of each problem's coarsened points, then of its fine points near those.

    The optimum of merged points is not the fine one, and Lloyd from it stops at the nearest
    fixed point, often a worse one: in the sparse tails the best boundary moves by a group or
    two. So the DP runs again on the fine points, each cut confined to WINDOW groups either side
    of its coarse position (a window per layer: each layer spans its window, not the problem).
    A cut that ends on its window's edge gets a window centred on it, and the DP runs again (at
    most RECENTRE times). All problems go through every pass together.
    """
    n = int(offsets[-1])
    C, S = prefix[:2]
    # Fine index where each group begins; every problem's start is one.
    first = np.concatenate([_coarsen_mixed(pts[a:b], C[a + p:b + p + 1], COARSE_DP) + a
                            for p, (a, b) in enumerate(zip(offsets[:-1], offsets[1:], strict=True))])
    grp_off = np.searchsorted(first, offsets)
    # A group's weight and (centred) sum from the prefix sums: its slots are its points' shifted
    # by the problem's number. Centred means suffice, since the DP's cuts do not move with a shift.
    pid = np.repeat(np.arange(offsets.size - 1), np.diff(grp_off))
    g0, g1 = first + pid, np.append(first[1:], n) + pid
    w = C[g1] - C[g0]
    cuts, _ = kmeans1d_dp((S[g1] - S[g0]) / w, w, grp_off, k)
    if first.size == n:  # no group merged anything: that was the fine optimum
        return interval_means(pts, cnt, offsets, cuts, prefix)
    gc = cuts[:, 1:-1] + grp_off[:-1, None]  # inner cuts, global group indices
    first_ext = np.append(first, n)
    lo = first_ext[np.maximum(gc - WINDOW, grp_off[:-1, None])]
    hi = first_ext[np.minimum(gc + WINDOW, grp_off[1:, None])]
    windows = np.stack([lo, hi], axis=2) - offsets[:-1, None, None]
    sizes = np.diff(offsets)[:, None]
    for _ in range(RECENTRE):
        cuts, _ = kmeans1d_dp(pts, cnt, offsets, k, windows, prefix)
        inner = cuts[:, 1:-1]
        # A cut on the edge of its window may want to go further: centre the windows on the cuts and
        # run again (a cut strictly inside its window is where the optimum under that window puts it).
        edge = ((inner == windows[:, :, 0]) & (inner > 0)) | ((inner == windows[:, :, 1]) & (inner < sizes))
        if not edge.any():
            break
        half = np.maximum((windows[:, :, 1] - windows[:, :, 0]) // 2, 1)
        windows = np.stack([np.maximum(inner - half, 0), np.minimum(inner + half, sizes)], axis=2)
    return interval_means(pts, cnt, offsets, cuts, prefix)


def _exact_step(x, cent, k):
    """One Lloyd update on the real weights, chunk by chunk (no index array of the whole layer)."""
    counts = np.zeros(k)
    sums = np.zeros(k)
    for lo, idx in zip(range(0, x.size, CHUNK), assign1d_chunks(x, cent), strict=True):
        part = x[lo:lo + CHUNK]
        counts += np.bincount(idx, minlength=k)
        sums += np.bincount(idx, weights=part, minlength=k)
    filled = counts > 0
    cent = cent.copy()
    cent[filled] = sums[filled] / counts[filled]
    # The caller reassigns to these moved centroids, which can only lower the error again.
    return np.sort(cent).astype(np.float32)


def assign1d_packed(x: np.ndarray, centroids: np.ndarray, bits: int) -> bytes:
    """Nearest-centroid indices of x, packed as they are computed (never the whole uint16 array)."""
    from ..bitpack import pack_stream

    return pack_stream(assign1d_chunks(np.ravel(x), centroids), bits)


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
    for part in assign1d_chunks(x, centroids):
        out[lo:lo + part.size] = part
        lo += part.size
    return out


def assign1d_chunks(x: np.ndarray, centroids: np.ndarray):
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

    Bins carry their centre as their value: with 2**18 bins that is exact to 4e-6 of the range,
    and kmeans1d_centroids ends with an exact update on the real weights anyway.
    Counting alone (no weighted bincounts) keeps this pass cheap on 100 M-weight layers.
    """
    if x.size <= EXACT_MAX:
        pts, cnt = np.unique(x, return_counts=True)  # float32 sorts faster; widening is exact
        return pts.astype(np.float64), cnt.astype(np.float64)
    lo, hi = float(x.min()), float(x.max())
    scale = np.float32(HIST_BINS / (hi - lo)) if hi > lo else np.float32(0)
    cnt = np.zeros(HIST_BINS)
    for a in range(0, x.size, HIST_CHUNK):  # larger: each pass adds up a whole histogram
        b = ((x[a:a + HIST_CHUNK] - np.float32(lo)) * scale).astype(np.int32)
        np.minimum(b, HIST_BINS - 1, out=b)
        cnt += np.bincount(b, minlength=HIST_BINS)
    keep = cnt > 0
    pts = lo + (np.flatnonzero(keep) + 0.5) / (scale if scale else 1.0)
    return pts, cnt[keep]


COARSE_DP = 1 << 10  # points of the first DP: 2 * COARSE_DP at most, see _coarsen_mixed
WINDOW = 2  # groups either side of a coarse cut where the fine DP may move it
RECENTRE = 8  # rounds at most; one was the rule before, and 8 never took longer (measured on the zoo)


def _coarsen_mixed(pts, C, size: int):
    """Where each group of neighbouring points begins, groups of at most 1/size of the weight and
    of the range (C: the prefix sums of the points' weights, C[0] = 0).

    Equal weight alone leaves wide groups in the tails, where the optimal boundaries of sparse
    clusters then move by many groups; the value grid bounds that, and together they make at
    most 2 * size groups.
    """
    if pts.size <= 2 * size:
        return np.arange(pts.size)
    by_weight = np.minimum(C[:-1] * size // C[-1], size - 1).astype(np.int64)
    span = pts[-1] - pts[0]
    by_value = np.minimum((pts - pts[0]) * (size / span), size - 1).astype(np.int64) if span > 0 else by_weight
    new = np.ones(pts.size, dtype=bool)
    new[1:] = (by_weight[1:] != by_weight[:-1]) | (by_value[1:] != by_value[:-1])
    return np.flatnonzero(new)


def _lloyd_sorted(pts, C, S, Q, cent, max_iter, shift: float = 0.0):
    """Lloyd on sorted weighted points from prefix sums, which may be of the points less `shift`."""
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
        cent[filled] = shift + s[filled] / n[filled]
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
