"""The toxicity matrix read from the vaults agrees with the fabricated source tables."""

from __future__ import annotations

import numpy as np

from analytics.features import (
    FEATURES,
    GRADES,
    REGIMENS,
    TOXICITY_BOUNDS,
    breast_cancer_dataset,
    toxicity_dataset,
)


def test_toxicity_rows_match_the_source_tables(edinburgh):
    frames, vaults = edinburgh
    tox, treat = frames["chemocare_toxicity"], frames["chemocare_treatment"]
    cycles = treat[["treatment_id", "cycle_number", "regimen"]].drop_duplicates()
    joined = tox.merge(cycles, on=["treatment_id", "cycle_number"])
    parts = [toxicity_dataset(v, source=h) for h, v in vaults.items()]
    x = np.concatenate([p.x for p in parts])
    y = np.concatenate([p.y for p in parts])
    assert x.shape == (len(joined), len(FEATURES))
    expected_positive = int((joined[list(GRADES)].max(axis=1) >= 3).sum())
    assert int(y.sum()) == expected_positive
    regimen_cols = [FEATURES.index(f"regimen_{r}") for r in REGIMENS]
    assert np.all(x[:, regimen_cols].sum(axis=1) == 1)
    counts = dict(zip(REGIMENS, x[:, regimen_cols].sum(axis=0), strict=True))
    assert counts == {r: float((joined["regimen"] == r).sum()) for r in REGIMENS}
    ages = x[:, FEATURES.index("age")]
    assert ages.min() >= 18 and ages.max() <= 100


def test_only_the_asked_patients_are_read(edinburgh):
    _, vaults = edinburgh
    v = next(iter(vaults.values()))
    # two patients with toxicity assessments (the vault's order of patients is not the fabrication's,
    # and not every patient had chemotherapy)
    sizes = {p: len(toxicity_dataset(v, [p])) for p in v.patients()}
    asked = [p for p, n in sizes.items() if n][:2]
    some = toxicity_dataset(v, asked)
    every = toxicity_dataset(v)
    assert len(asked) == 2 and len(some) == sizes[asked[0]] + sizes[asked[1]] < len(every) == sum(sizes.values())


def test_breast_cancer_bounds_cover_the_table():
    data, bounds = breast_cancer_dataset()
    assert data.x.shape == (569, 30) and len(bounds) == 30
    assert all(b.low < data.x[:, i].min() and data.x[:, i].max() < b.high for i, b in enumerate(bounds))
    assert len(TOXICITY_BOUNDS) == len(FEATURES)


def test_toxicity_predictor_trains_across_the_hospitals(edinburgh):
    from analytics.learning import TrainConfig, train_federated

    _, vaults = edinburgh
    shards = [toxicity_dataset(v, source=h) for h, v in vaults.items()]
    cfg = TrainConfig(method="dpsgd", epsilon=2.0, delta=1e-5, rounds=2, local_epochs=1, batch_size=16)
    result = train_federated(shards, TOXICITY_BOUNDS, cfg)
    assert result.parameters["weight"].shape == (1, len(FEATURES))
    assert 0 < result.epsilon_spent <= 2.0 + 1e-6
