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


def test_training_frames_of_cutoffs_written_by_different_versions_stack(storage, tmp_path):
    # a cutoff whose stored features declared nullable fields (older releases), one with required fields
    # (to_table), and one missing a feature: read_frames stacks them all
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sightlines.features import to_table
    from sightlines.pipeline._train import read_frames

    store = storage.client("acme")
    extra = {"_u": np.array([0.1, 0.2]), "y__p": np.array([1.0, 0.0]), "w__p": np.ones(2), "pi__p": np.ones(2)}
    new = to_table(["a", "b"], {"f1": np.array([1.0, 2.0], np.float32), "f2": np.zeros(2, np.float32)}, extra=extra)
    old = pa.table({n: new.column(n) for n in new.column_names})  # every field nullable
    short = new.drop(["f2"])
    with store.dataset(store.training("2026-11-24")) as ds:
        for c, t in (("2026-11-10", new), ("2026-11-03", old), ("2026-10-27", short)):
            path = str(tmp_path / f"{c}.parquet")
            pq.write_table(t, path)
            ds.add_file(f"c={c}/part-00000.parquet", path)
    frames = read_frames(store, "2026-11-24", "p", ["2026-11-10", "2026-11-03", "2026-10-27"], ["f1", "f2"])
    assert frames.num_rows == 6 and frames.column("f2").null_count == 2
    assert frames.column("_cutoff").to_pylist() == ["2026-11-10"] * 2 + ["2026-11-03"] * 2 + ["2026-10-27"] * 2
