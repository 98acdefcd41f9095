"""Properties of every quantizer: error falls with more bits, invariants of codebooks, exact accounting."""
import itertools
import math

import numpy as np
import pytest

from vqexport.config import QuantConfig
from vqexport.errors import ConfigError
from vqexport.methods import registry
from vqexport.methods.registry import decode


def weight(rng, m=64, n=96):
    # Heavy-ish tails, like trained weights.
    return (rng.standard_normal((m, n)) * rng.gamma(2.0, 0.5, (m, 1))).astype(np.float32)


def fit(w, seed=0, **kw):
    q = QuantConfig(**kw)
    mod = registry.get(q.method)
    mod.check(w.shape, q)
    return mod.fit(w, q, seed)


def rel_err(w, t):
    return np.linalg.norm(w - decode(t)) / np.linalg.norm(w)


@pytest.mark.parametrize("method,extra,ks", [
    ("kmeans", {}, [2, 4, 16, 64, 256]),
    ("pq", {"d": 4}, [2, 4, 8, 16, 64]),
    ("pq", {"d": 4, "rows": True}, [2, 4, 8, 16, 64]),
    ("rq", {"stages": 2}, [2, 4, 8, 16, 32]),
])
def test_error_falls_as_k_grows(rng, method, extra, ks):
    w = weight(rng)
    errs = [rel_err(w, fit(w, method=method, k=k, **extra)) for k in ks]
    assert all(b < a for a, b in itertools.pairwise(errs)), errs


def test_rq_error_falls_with_stages(rng):
    w = weight(rng)
    errs = [rel_err(w, fit(w, method="rq", k=16, stages=t)) for t in (1, 2, 3, 4)]
    assert all(b < a for a, b in itertools.pairwise(errs)), errs


def test_svd_error_falls_with_rank_and_full_rank_is_exact(rng):
    w = weight(rng)
    errs = [rel_err(w, fit(w, method="svd", rank=r)) for r in (1, 4, 16, 32)]
    assert all(b < a for a, b in itertools.pairwise(errs)), errs
    assert rel_err(w, fit(w, method="svd", rank=64)) < 1e-5


@pytest.mark.parametrize("k", [2, 5, 16, 100])
def test_kmeans_has_at_most_k_values_and_sorted_codebook(rng, k):
    w = weight(rng)
    t = fit(w, method="kmeans", k=k)
    assert len(np.unique(decode(t))) <= k
    assert t.codebook().shape == (k,)
    assert np.all(np.diff(t.codebook()) >= 0)
    assert t.indices().max() < k


def test_pq_each_segment_uses_at_most_k_subvectors(rng):
    w = weight(rng)
    t = fit(w, method="pq", k=8, d=4)
    wh = decode(t)
    for j in range(w.shape[1] // 4):
        assert len(np.unique(wh[:, 4 * j:4 * j + 4], axis=0)) <= 8


def test_binary_scale_is_the_least_squares_one(rng):
    w = weight(rng)
    t = fit(w, method="binary")
    alpha = t.codebook()[1]
    assert np.allclose(t.codebook(), [-alpha, alpha])
    assert np.array_equal(np.abs(decode(t)), np.full(w.shape, alpha, np.float32))
    base = np.linalg.norm(w - decode(t))
    for scale in (0.9, 1.1):
        assert np.linalg.norm(w - np.sign(decode(t)) * alpha * scale) > base


def test_float16_codebook_is_what_decodes(rng):
    w = weight(rng)
    t = fit(w, method="kmeans", k=16, codebook_dtype="float16")
    assert t.sections["codebook"].dtype == "float16"
    assert set(np.unique(decode(t))) <= set(t.codebook().tolist())
    assert t.ideal_bits == w.size * 4 + 16 * 16


# The paper's compression-rate formulas (PAPER.md) against our bit accounting.
M, N = 64, 96


@pytest.mark.parametrize("k", [2, 16, 256])
def test_kmeans_rate_matches_paper(rng, k):
    t = fit(weight(rng, M, N), method="kmeans", k=k)
    assert t.compression == pytest.approx(32 * M * N / (M * N * math.log2(k) + 32 * k))


@pytest.mark.parametrize("k,d", [(4, 2), (16, 4), (32, 8)])
def test_pq_rate_matches_paper(rng, k, d):
    t = fit(weight(rng, M, N), method="pq", k=k, d=d)
    s = N // d
    assert t.compression == pytest.approx(32 * M * N / (32 * k * N + M * s * math.log2(k)))


@pytest.mark.parametrize("k,stages", [(4, 1), (16, 3)])
def test_rq_rate_matches_paper(rng, k, stages):
    t = fit(weight(rng, M, N), method="rq", k=k, stages=stages)
    assert t.compression == pytest.approx(32 * M * N / (stages * (32 * k * N + M * math.log2(k))))


def test_svd_and_binary_rates_match_paper(rng):
    t = fit(weight(rng, M, N), method="svd", rank=8)
    assert t.compression == pytest.approx(M * N / (8 * (M + N)))
    t = fit(weight(rng, M, N), method="binary")
    assert t.compression == pytest.approx(32 * M * N / (M * N + 64))


@pytest.mark.parametrize("kw,msg", [
    ({"method": "kmeans", "k": 1}, "k must be between 2"),
    ({"method": "kmeans", "k": 70000}, "k must be between 2"),
    ({"method": "nope"}, "unknown method"),
    ({"method": "pq", "d": 0}, "d must be at least 1"),
    ({"method": "rq", "stages": 0}, "stages"),
    ({"method": "svd", "rank": 0}, "rank"),
])
def test_config_validates_at_construction(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        QuantConfig(**kw)


@pytest.mark.parametrize("kw,msg", [
    ({"method": "kmeans", "k": 8 * 12 + 1}, "larger than the 96 weights"),
    ({"method": "pq", "d": 5}, "does not divide the 12 columns"),
    ({"method": "pq", "k": 16}, "larger than the 8 vectors"),
    ({"method": "rq", "k": 16}, "larger than the 8 rows"),
    ({"method": "svd", "rank": 9}, "larger than min"),
])
def test_check_rejects_settings_that_do_not_fit(kw, msg):
    q = QuantConfig(**kw)
    with pytest.raises(ConfigError, match=msg):
        registry.get(q.method).check((8, 12), q)


def test_same_seed_same_result_other_seed_may_differ(rng):
    w = weight(rng)
    a, b = fit(w, seed=3, method="pq", k=16, d=4), fit(w, seed=3, method="pq", k=16, d=4)
    assert np.array_equal(a.sections["indices"].data, b.sections["indices"].data)
    assert np.array_equal(a.codebook(), b.codebook())


@pytest.mark.parametrize("kw", [
    {"method": "binary"}, {"method": "kmeans", "k": 8}, {"method": "pq", "k": 8, "d": 4},
    {"method": "pq", "k": 8, "d": 4, "rows": True}, {"method": "rq", "k": 8}, {"method": "svd", "rank": 5},
])
def test_decoding_row_blocks_equals_the_whole(rng, kw):
    w = weight(rng, 40, 24)
    t = fit(w, **kw)
    full = decode(t)
    blocks = t.row_blocks(elements=7 * 24)  # 7 rows a block: blocks that do not divide 40
    assert len(blocks) == 6
    assert np.array_equal(np.concatenate([decode(t, r) for r in blocks]), full)
