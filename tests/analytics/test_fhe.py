"""CKKS analytics with TenSEAL: 128-bit parameters, public contexts, encrypted statistics and inference."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import ColumnBounds, InvalidParameters
from analytics.features import REGIMENS, breast_cancer_dataset
from analytics.fhe import (
    COEFF_MOD_BIT_SIZES,
    MAX_BITS_128,
    POLY_MODULUS_DEGREE,
    StatsLayout,
    StudyKeys,
    add_encrypted,
    decrypt,
    encrypt,
    predict_batch,
    predict_one,
)
from analytics.learning import TrainConfig, evaluate, predict_proba, scale, train_centralised


@pytest.fixture(scope="module")
def keys():
    return StudyKeys.create()


@pytest.fixture(scope="module")
def public(keys):
    return StudyKeys.load(keys.public_bytes())


def test_parameters_are_128_bit_and_the_public_context_has_no_secret(keys, public):
    assert POLY_MODULUS_DEGREE == 8192 and sum(COEFF_MOD_BIT_SIZES) <= MAX_BITS_128[8192]
    assert keys.is_private and not public.is_private
    with pytest.raises(InvalidParameters):
        decrypt(public, encrypt(public, [1.0, 2.0]))
    with pytest.raises(InvalidParameters):
        public.secret_bytes()
    with pytest.raises(InvalidParameters):
        StudyKeys.load(b"not a context")


def test_encrypted_statistics_across_hospitals(keys, public):
    rng = np.random.default_rng(0)
    layout = StatsLayout((ColumnBounds("age", 18, 100), ColumnBounds("dose_ratio", 0.5, 1.2)), REGIMENS)
    sites = []
    for n in (40, 25, 60):
        x = np.column_stack([rng.uniform(18, 90, n), rng.uniform(0.8, 1.1, n)])
        sites.append((x, rng.choice(REGIMENS, n), rng.integers(0, 6, n)))
    # each hospital encrypts under the public context; the aggregator adds with the public context only
    ciphertexts = [encrypt(public, layout.vector(*s)) for s in sites]
    total = add_encrypted(public, ciphertexts)
    stats = layout.read(decrypt(keys, total))
    x = np.concatenate([s[0] for s in sites])
    regimen = np.concatenate([s[1] for s in sites])
    grade = np.concatenate([s[2] for s in sites])
    assert stats["count"] == 125
    assert stats["mean"]["age"] == pytest.approx(x[:, 0].mean(), abs=1e-4)
    assert stats["variance"]["dose_ratio"] == pytest.approx(x[:, 1].var(), abs=1e-4)
    for r in REGIMENS:
        assert stats["grade_histogram"][r] == [int(np.sum((regimen == r) & (grade == g))) for g in range(6)]


def test_encrypted_inference_matches_plaintext(keys, public):
    data, bounds = breast_cancer_dataset()
    train, test = data.split(0.2, seed=0)
    model = train_centralised(train, bounds, TrainConfig(method="none", rounds=2, local_epochs=3)).parameters
    x = scale(test.x, bounds)
    plain = predict_proba(model, x)
    one = predict_one(keys, public, x[0], model["weight"], float(model["bias"][0]))
    assert one == pytest.approx(plain[0], abs=1e-4)
    batch = predict_batch(keys, public, x, model["weight"], float(model["bias"][0]))
    assert np.max(np.abs(batch - plain)) < 1e-4
    gap = abs(np.mean((batch >= 0.5) == test.y) - evaluate(model, x, test.y).accuracy)
    assert gap <= 0.01
