"""Sampling keeps rare positives and stays unbiased once weighted."""

import numpy as np

from sightlines.sampling import inclusion_probability, uniform_hash, user_hashes


def test_uniform_hash_is_uniform_and_deterministic():
    h = user_hashes([f"u-{i}" for i in range(200_000)])
    u = uniform_hash(h, 42)
    assert 0 <= u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005 and np.all(np.abs(np.histogram(u, bins=10)[0] / 20_000 - 1) < 0.03)
    assert np.array_equal(u, uniform_hash(user_hashes([f"u-{i}" for i in range(200_000)]), 42))
    assert not np.array_equal(u, uniform_hash(h, 43))


def test_weighted_sample_estimates_population_totals():
    rng = np.random.default_rng(0)
    n = 400_000
    label = (rng.random(n) < 0.01).astype(float)  # rare positives
    label[rng.random(n) < 0.05] = np.nan  # not examples
    positive = label == 1
    pi = inclusion_probability(label, positive, keep_positives=True, budget=20_000, expected_candidates=n)
    u = uniform_hash(user_hashes([str(i) for i in range(n)]), 7)
    kept = u < pi
    assert kept[positive].all()  # every rare positive is kept
    assert 15_000 < kept.sum() < 25_000  # about the budget
    w = 1 / pi[kept]
    est_pos, true_pos = (w * label[kept]).sum(), np.nansum(label)
    est_n, true_n = w.sum(), (~np.isnan(label)).sum()
    assert abs(est_pos / true_pos - 1) < 1e-9  # positives have pi = 1
    assert abs(est_n / true_n - 1) < 0.02
