"""Training sets of bounded size that stay unbiased.

Every candidate example (a user at a cutoff) gets an inclusion probability
``pi``; it is kept when a uniform number ``u``, fixed per (user, cutoff) by a
hash, falls below ``pi``, and is then weighted ``1 / pi`` (Horvitz-Thompson),
so sums and means over the sample estimate those over all users. Rare
positives (a purchase tomorrow, an opt-out) are kept with ``pi = 1`` and the
negatives thinned, which keeps the information where it is scarce. Using one
``u`` per (user, cutoff) for every sightline makes their samples overlap, so
the shared training frame stays small.

Examples
--------
>>> import numpy as np
>>> label = np.array([1.0, 0.0, 0.0, 0.0, np.nan])
>>> pi = inclusion_probability(label, label == 1.0, keep_positives=True, budget=2, expected_candidates=4)
>>> pi.tolist()
[1.0, 0.3333333333333333, 0.3333333333333333, 0.3333333333333333, 0.0]
"""

from __future__ import annotations

import numpy as np

__all__ = ["inclusion_probability", "uniform_hash", "user_hashes"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def user_hashes(ids: list[str]) -> np.ndarray:
    """Stable 64-bit hashes of user ids (identical in every process and run)."""
    from pandas.util import hash_array

    return hash_array(np.asarray(ids, dtype=object), categorize=False)


def uniform_hash(hashes: np.ndarray, salt: int) -> np.ndarray:
    """Uniform numbers in [0, 1), a deterministic function of (user hash, salt) (splitmix64)."""
    with np.errstate(over="ignore"):
        x = hashes.astype(np.uint64) ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def inclusion_probability(label: np.ndarray, positive: np.ndarray, *, keep_positives: bool, budget: float,
                          expected_candidates: float) -> np.ndarray:
    """Inclusion probability of each row (0 for non-examples, whose label is NaN).

    Parameters
    ----------
    label : array
        Labels; NaN marks users that are not examples.
    positive : array of bool
        Rows whose event happened.
    keep_positives : bool
        Keep all positives when they are rare (fewer than half the budget).
    budget : float
        Examples wanted from this population (e.g. the sample size / cutoffs).
    expected_candidates : float
        How many candidates the whole population holds (this block's share of
        candidates times the number of users).
    """
    cand = ~np.isnan(label)
    pi = np.zeros(len(label))
    n_cand = int(cand.sum())
    if n_cand == 0:
        return pi
    expected_candidates = max(float(expected_candidates), float(n_cand))
    base = min(1.0, budget / expected_candidates)
    if keep_positives:
        pos = positive & cand
        rate = pos.sum() / n_cand
        expected_pos = expected_candidates * rate
        if 0 < rate < 1 and expected_pos <= budget / 2:
            p_neg = min(1.0, (budget - expected_pos) / (expected_candidates - expected_pos))
            pi[cand] = np.where(pos[cand], 1.0, p_neg)
            return pi
    pi[cand] = base
    return pi
