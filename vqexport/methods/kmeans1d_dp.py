"""Optimal weighted 1-D k-means by dynamic programming, many independent problems at once.

In 1-D an optimal cluster is an interval of the sorted points, so with D_j[i] the least error
of the first i points in j clusters, D_j[i] = min_m D_{j-1}[m] + cost(m, i), where cost (the
error of points m..i-1 around their mean) comes from prefix sums of counts, sums and squared
sums. The first optimal m is non-decreasing in i (interval costs obey the quadrangle
inequality), so each layer is solved by divide and conquer: the middle i of a range gets its
optimum by brute force and splits both the range and the candidates, O(n log n) a layer.

Python loops stay per recursion level, never per point or per problem: every segment of a
level (of every problem) is evaluated in one expansion of its candidate range, and its
minimum and first position come from np.minimum.reduceat. The problems lie end to end, each
owning n_p + 1 slots (prefixes of 0..n_p of its points), so a slot never mixes two problems.
"""
from __future__ import annotations

import numpy as np


def kmeans1d_dp(pts: np.ndarray, cnt: np.ndarray, offsets: np.ndarray, k: int,
                windows: np.ndarray | None = None, prefix: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Optimal k intervals of each problem p = points pts[offsets[p]:offsets[p + 1]] (ascending).

    cnt: the points' weights (> 0). Returns (cuts [P, k + 1] int64, local indices of the interval
    bounds: cluster c is points cuts[p, c]:cuts[p, c + 1]; sse [P]). With fewer points than k
    some intervals are empty (a cut repeated): every point is then its own cluster.
    windows [P, k - 1, 2]: optional inclusive bounds (local, non-decreasing in c) of each inner
    cut c = 1..k-1; the optimum among partitions whose cuts lie in them. Each layer of the DP then
    only spans its window, which is what makes refining a coarse answer on the fine points cheap.
    prefix: prefix_sums(pts, cnt, offsets) when the caller already has them.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    sizes = np.diff(offsets)
    P = sizes.size
    if k < 1 or P == 0 or np.any(sizes < 1):
        raise ValueError("kmeans1d_dp needs k >= 1 and at least one point per problem")
    slot0 = offsets[:-1] + np.arange(P)  # slot of prefix 0 of each problem
    last = slot0 + sizes  # slot of the whole problem
    nslots = int(last[-1]) + 1
    C, S, Q = (prefix if prefix is not None else prefix_sums(pts, cnt, offsets))[:3]

    if windows is None:
        lo = np.broadcast_to(slot0[:, None], (P, k - 1))
        hi = np.broadcast_to(last[:, None], (P, k - 1))
    else:
        lo = np.clip(windows[:, :, 0], 0, sizes[:, None]) + slot0[:, None]
        hi = np.maximum(np.clip(windows[:, :, 1], 0, sizes[:, None]) + slot0[:, None], lo)
    D = np.full(nslots, np.inf)
    i = _ranges(lo[:, 0], hi[:, 0]) if k > 1 else last
    D[i] = _cost(C, S, Q, np.repeat(slot0, (hi[:, 0] - lo[:, 0] + 1) if k > 1 else 1), i)  # one cluster
    spare = np.full(nslots, np.inf) if k > 1 else None
    pq = np.empty(nslots) if k > 1 else None  # D_{j-1}[m] - Q[m] at the layer's candidates m
    args, scratch = [], _Scratch()
    for j in range(1, k):
        # D_j (j + 1 clusters) ends at cut j + 1; its last cluster starts at cut j.
        a, b = (last, last) if j == k - 1 else (np.maximum(lo[:, j], lo[:, j - 1]), hi[:, j])
        # Two buffers in turn, each reset only where the next layer reads it (its candidates, the
        # window of cut j): a windowed DP then costs its windows, not k passes over every point.
        if j < k - 1:
            spare[_ranges(lo[:, j], hi[:, j])] = np.inf
        width = b - a + 1
        at = np.cumsum(width) - width
        cand = _ranges(lo[:, j - 1], hi[:, j - 1])
        pq[cand] = D[cand] - Q[cand]  # once per layer, not at every level of it
        arg = _layer(pq, spare, C, S, Q, a, b, lo[:, j - 1].copy(), hi[:, j - 1].copy(), at - a, scratch)
        args.append((a, at, arg))
        D, spare = spare, D
    sse = D[last]
    cuts = np.empty((P, k + 1), dtype=np.int64)
    cuts[:, k] = last
    end = last
    for j in range(k - 1, 0, -1):
        a, at, arg = args[j - 1]  # the argmins of layer j, only where it was computed
        end = arg[at + end - a]
        cuts[:, j] = end
    cuts[:, 0] = slot0
    return cuts - slot0[:, None], np.maximum(sse, 0.0)


def prefix_sums(pts: np.ndarray, cnt: np.ndarray, offsets: np.ndarray):
    """(C, S, Q, means): prefix sums of weights, weighted points and weighted squares of each
    problem, laid out as kmeans1d_dp's slots (problem p: n_p + 1 prefixes from slot offsets[p] + p),
    each problem around its own weighted mean (means [P]): the prefix squared sums then stay near the
    errors they are differenced into, not the (much larger) squared offsets of the data.
    Problem by problem, not one running sum: a problem's slots must not depend on the problems
    before it (batched answers equal one-by-one ones, bit for bit)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    w = np.asarray(cnt, dtype=np.float64)
    x = np.asarray(pts, dtype=np.float64)
    P = offsets.size - 1
    C, S, Q = (np.empty(int(offsets[-1]) + P) for _ in range(3))
    means = np.empty(P)
    for p, (lo, hi) in enumerate(zip(offsets[:-1], offsets[1:], strict=True)):
        wp = w[lo:hi]
        means[p] = np.add.reduce(wp * x[lo:hi]) / np.add.reduce(wp)
        xp = x[lo:hi] - means[p]
        a = lo + p  # slot of prefix 0
        C[a] = S[a] = Q[a] = 0.0
        np.cumsum(wp, out=C[a + 1:hi + p + 1])
        xp *= wp  # xp is spent: w (x - mean), then w (x - mean)^2
        np.cumsum(xp, out=S[a + 1:hi + p + 1])
        xp *= x[lo:hi] - means[p]
        np.cumsum(xp, out=Q[a + 1:hi + p + 1])
    return C, S, Q, means


def _ranges(a, b):
    """The slots a[p]..b[p] of every p, one after another."""
    n = b - a + 1
    return np.arange(int(n.sum())) + np.repeat(a - (np.cumsum(n) - n), n)


def _cost(C, S, Q, m, i):
    n = C[i] - C[m]
    s = S[i] - S[m]
    # An empty interval (m == i) has s == 0 exactly, so the floor on n only avoids 0 / 0.
    return (Q[i] - Q[m]) - s * s / np.maximum(n, 1e-300)


class _Scratch:
    """Arrays reused by every level and layer of one DP. Fresh ones each level cost more than the
    arithmetic: a new megabyte-sized array comes from mmap, and every page faults on first touch."""

    def __init__(self):
        self.size = 0

    def get(self, n: int):
        if n > self.size:
            self.size = max(n, self.size * 3 // 2)
            f, i = (np.empty(self.size) for _ in range(4)), (np.empty(self.size, dtype=np.intp) for _ in range(2))
            self.f, self.i = list(f), list(i)
            self.eq = np.empty(self.size, dtype=bool)
            self.arange = np.arange(self.size)
        return [a[:n] for a in self.f], [a[:n] for a in self.i], self.eq[:n], self.arange[:n]


def _layer(pq, out, C, S, Q, a, b, ca, cb, at, scratch):
    """out[i] = D_j[i] for slots a..b of each segment, given the optimum of each lies in ca..cb
    (pq: D_{j-1}[m] - Q[m] there).

    Returns the optimal m of every computed slot, compactly: slot i of a segment at i + at."""
    arg = np.empty(int(np.sum(b - a + 1)), dtype=np.int64)
    while a.size:
        mid = (a + b) // 2
        hi = np.minimum(cb, mid)  # an empty last interval (m == i) is allowed: it costs 0
        length = hi - ca + 1
        ends = np.cumsum(length)
        starts = ends - length
        (n, s, val, tmp), (sid, m), eq, ar = scratch.get(int(ends[-1]))
        # The segment of each candidate, as a running sum of segment starts (every length is >= 1),
        # and gathers by it: np.repeat would hold the GIL, and the fits run on threads.
        sid.fill(0)
        sid[starts[1:]] = 1
        np.cumsum(sid, out=sid)
        np.take(ca - starts, sid, out=m, mode="clip")  # clip: an unchecked gather, the indices are in range
        m += ar
        # In place from here: this loop is the whole cost of the DP.
        np.take(C[mid], sid, out=n, mode="clip")
        n -= np.take(C, m, out=tmp, mode="clip")
        np.take(S[mid], sid, out=s, mode="clip")
        s -= np.take(S, m, out=tmp, mode="clip")
        s *= s
        np.maximum(n, 1e-300, out=n)  # an empty interval has s == 0 exactly: 0, not 0 / 0
        s /= n
        np.take(pq, m, out=val, mode="clip")  # D_{j-1}[m] + cost(m, i), less the part that depends on i alone
        val -= s
        best = np.minimum.reduceat(val, starts)
        # The first position of each minimum, so that ties break alike everywhere and the argmin
        # stays monotone (a NaN weight leaves no hit: then the segment's last candidate).
        hit = np.flatnonzero(np.equal(val, np.take(best, sid, out=tmp, mode="clip"), out=eq))
        seg_of = sid[hit]  # ascending, usually one hit per segment
        first = np.ones(hit.size, dtype=bool)
        np.not_equal(seg_of[1:], seg_of[:-1], out=first[1:])
        pos = ends - 1
        pos[seg_of[first]] = hit[first]
        opt = m[pos]
        out[mid], arg[mid + at] = best + Q[mid], opt
        # Children: the left half looks at candidates up to opt, the right half from opt on.
        left, right = mid > a, mid < b
        seg = np.concatenate([np.stack([a, mid - 1, ca, opt, at])[:, left],
                              np.stack([mid + 1, b, opt, cb, at])[:, right]], axis=1)
        a, b, ca, cb, at = seg
    return arg


def interval_means(pts: np.ndarray, cnt: np.ndarray, offsets: np.ndarray, cuts: np.ndarray,
                   prefix: tuple | None = None) -> np.ndarray:
    """Weighted mean of each interval [P, k]; an empty interval takes its left neighbour's (sorted).
    prefix: prefix_sums(pts, cnt, offsets) when the caller already has them."""
    offsets = np.asarray(offsets, dtype=np.int64)
    C, S, _, means = prefix if prefix is not None else prefix_sums(pts, cnt, offsets)
    g = cuts + (offsets[:-1] + np.arange(offsets.size - 1))[:, None]  # slots
    n = C[g[:, 1:]] - C[g[:, :-1]]
    s = S[g[:, 1:]] - S[g[:, :-1]]
    cent = np.where(n > 0, means[:, None] + s / np.where(n > 0, n, 1.0), np.nan)
    # Empty intervals only come with fewer points than k; copying a neighbour keeps the
    # centroids sorted and costs nothing (each point already has its own).
    first = np.asarray(pts)[offsets[:-1]]
    for c in range(cent.shape[1]):
        col = cent[:, c]
        fill = cent[:, c - 1] if c else first
        cent[:, c] = np.where(np.isnan(col), fill, col)
    return cent
