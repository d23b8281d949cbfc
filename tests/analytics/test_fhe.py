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
    encrypt_many,
    encrypted_logit,
    logit_of,
    predict_batch,
    predict_many,
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


def test_the_servers_reply_reveals_the_logit_not_the_weights(keys, public):
    rng = np.random.default_rng(3)
    x, w, b = rng.uniform(-1, 1, 15), rng.normal(size=15), 0.25
    reply = encrypted_logit(public, encrypt(keys, x), w, b)
    assert logit_of(keys, reply) == pytest.approx(float(x @ w + b), abs=1e-5)
    shares = decrypt(keys, reply)
    assert len(shares) == 15 and np.min(np.abs(shares - x * w)) > 1.0  # each product masked
    other = decrypt(keys, encrypted_logit(public, encrypt(keys, x), w, b))
    assert np.max(np.abs(other - shares)) > 1.0  # fresh masks every time
    with pytest.raises(InvalidParameters):
        encrypted_logit(public, encrypt(keys, x), w[:3], b)


def test_many_values_and_many_patients_span_ciphertexts(keys, public):
    values = np.arange(10_000, dtype=float)
    parts = encrypt_many(public, values)
    assert len(parts) == 3
    assert np.allclose(np.concatenate([decrypt(keys, c) for c in parts])[:10_000], values, atol=1e-3)
    rng = np.random.default_rng(4)
    x, w = rng.uniform(-1, 1, (5000, 4)), rng.normal(size=4)
    p = predict_many(keys, public, x, w, -0.5)
    assert p.shape == (5000,) and np.max(np.abs(p - 1 / (1 + np.exp(-(x @ w - 0.5))))) < 1e-4
