"""Paired comparisons: McNemar's exact test and the bootstrap interval behave as they should."""
import numpy as np
import pytest

from vqexport.evaluate.paired import compare


def test_identical_models_are_not_different():
    a = np.random.default_rng(0).random(1000) < 0.9
    r = compare(a, a)
    assert r.only_a == r.only_b == 0 and r.p_value == 1.0
    assert r.ci_low == r.ci_high == 0.0 and r.verdict == "no significant difference"


def test_clear_winner_is_significant_and_interval_excludes_zero():
    rng = np.random.default_rng(1)
    b = rng.random(10000) < 0.85
    a = b.copy()
    flip = np.flatnonzero(~b)[:300]  # A also gets 300 of B's mistakes right
    a[flip] = True
    r = compare(a, b, seed=3)
    assert r.only_a == 300 and r.only_b == 0
    assert r.p_value < 1e-50 and r.verdict == "A better"
    assert 0 < r.ci_low < 0.03 < r.ci_high  # the true difference is 3 points


def test_balanced_disagreement_is_noise():
    b = np.zeros(1000, bool)
    a = b.copy()
    a[:20] = True  # A right on 20 images where B is wrong
    b[20:40] = True  # and B on 20 others
    r = compare(a, b)
    assert r.only_a == r.only_b == 20 and r.p_value == pytest.approx(1.0)
    assert r.ci_low < 0 < r.ci_high


def test_seed_decides_the_interval():
    rng = np.random.default_rng(2)
    a, b = rng.random(500) < 0.8, rng.random(500) < 0.8
    assert compare(a, b, seed=5) == compare(a, b, seed=5)
    assert compare(a, b, seed=5).ci_low != compare(a, b, seed=6).ci_low


def test_mismatched_vectors_are_refused():
    with pytest.raises(ValueError):
        compare(np.ones(3, bool), np.ones(4, bool))
