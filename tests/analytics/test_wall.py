"""The privacy wall's samplers and R(δ): statistical tests with fixed seeds.

Each tolerance is a number of standard errors computed from the sample size (Z = 5: a correct
sampler fails with probability < 1e-6, a sampler off by a few percent fails at once).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics import (
    ColumnBounds,
    InvalidParameters,
    PrivacyWall,
    gaussian_magnitude,
    gaussian_noise,
    optimal_magnitude,
    optimal_noise,
    r_delta,
    r_delta_measured,
    r_delta_relative_se,
)

Z = 5.0
N = 400_000


@pytest.mark.parametrize(("epsilon", "delta", "d"), [(1.0, 1e-5, 1.0), (0.5, 0.1, 3.0), (4.0, 0.5, 0.2)])
def test_optimal_noise_mean_magnitude(epsilon, delta, d):
    v = optimal_noise(N, epsilon=epsilon, delta=delta, sensitivity=d, rng=np.random.default_rng(1))
    b = d / epsilon
    expected = (1 - delta) * b
    # |V| is 0 w.p. δ, else Exponential(b): E|V|² = (1 − δ)·2b²
    se = math.sqrt(((1 - delta) * 2 * b * b - expected**2) / N)
    assert abs(np.abs(v).mean() - expected) < Z * se
    assert optimal_magnitude(epsilon=epsilon, delta=delta, sensitivity=d) == pytest.approx(expected)


@pytest.mark.parametrize("delta", [0.01, 0.2, 0.7])
def test_optimal_noise_point_mass_frequency(delta):
    v = optimal_noise(N, epsilon=1.0, delta=delta, sensitivity=1.0, rng=np.random.default_rng(2))
    zeros = int(np.count_nonzero(v == 0.0))  # Laplace draws are never exactly 0
    assert abs(zeros - N * delta) < Z * math.sqrt(N * delta * (1 - delta))


def test_optimal_noise_without_delta_is_laplace():
    v = optimal_noise(N, epsilon=2.0, delta=0.0, sensitivity=1.0, rng=np.random.default_rng(3))
    assert np.count_nonzero(v == 0.0) == 0
    # Laplace(b): P(|V| > t) = exp(−t/b); check at t = b
    tail = np.mean(np.abs(v) > 0.5)
    assert abs(tail - math.exp(-1)) < Z * math.sqrt(math.exp(-1) * (1 - math.exp(-1)) / N)


def test_gaussian_noise_mean_magnitude():
    eps, delta, d = 1.0, 1e-5, 2.0
    v = gaussian_noise(N, epsilon=eps, delta=delta, sensitivity=d, rng=np.random.default_rng(4))
    sigma = d * math.sqrt(2 * math.log(1.25 / delta)) / eps
    expected = sigma * math.sqrt(2 / math.pi)
    se = sigma * math.sqrt((1 - 2 / math.pi) / N)
    assert abs(np.abs(v).mean() - expected) < Z * se
    assert gaussian_magnitude(epsilon=eps, delta=delta, sensitivity=d) == pytest.approx(expected)


def test_r_delta_formula_is_the_ratio_of_magnitudes():
    for delta in (1e-6, 1e-3, 0.3, 0.9):
        ratio = gaussian_magnitude(epsilon=1.7, delta=delta, sensitivity=3.0) / \
            optimal_magnitude(epsilon=1.7, delta=delta, sensitivity=3.0)
        assert r_delta(delta) == pytest.approx(ratio, rel=1e-12)
    assert r_delta(1e-5) == pytest.approx(2 * math.sqrt(math.log(1.25e5)) / ((1 - 1e-5) * math.sqrt(math.pi)))


@pytest.mark.parametrize("delta", [1e-6, 1e-4, 1e-2, 0.1, 0.5, 0.9])
def test_r_delta_measured_matches_formula(delta):
    n = 300_000
    measured = r_delta_measured(delta, samples=n, rng=np.random.default_rng(5))
    rel = abs(measured - r_delta(delta)) / r_delta(delta)
    assert rel < Z * r_delta_relative_se(delta, n)


def test_r_delta_test_can_fail():
    """A sampler that forgot the point mass gives a measured R off by more than the tolerance."""
    delta, n = 0.5, 300_000
    rng = np.random.default_rng(6)
    g = np.abs(gaussian_noise(n, epsilon=1.0, delta=delta, sensitivity=1.0, rng=rng)).mean()
    wrong = np.abs(rng.laplace(0, 1.0, n)).mean()  # no δ point mass
    rel = abs(g / wrong - r_delta(delta)) / r_delta(delta)
    assert rel > Z * r_delta_relative_se(delta, n)


@pytest.mark.parametrize(("epsilon", "delta"), [(0, 0.1), (-1, 0.1), (math.inf, 0.1), (1, 1.0), (1, -0.1)])
def test_bad_privacy_parameters_are_refused(epsilon, delta):
    with pytest.raises(InvalidParameters):
        optimal_noise(3, epsilon=epsilon, delta=delta, sensitivity=1.0, rng=np.random.default_rng(0))


def test_gaussian_needs_positive_delta():
    with pytest.raises(InvalidParameters):
        gaussian_noise(3, epsilon=1, delta=0.0, sensitivity=1.0, rng=np.random.default_rng(0))
    with pytest.raises(InvalidParameters):
        r_delta(0.0)


# --------------------------------------------------------------------------- the wall on a matrix


def _wall(**kw) -> PrivacyWall:
    return PrivacyWall([ColumnBounds("age", 18, 90), ColumnBounds("dose", 0, 2), ColumnBounds("toxic", 0, 1)],
                       **kw)


def test_wall_clips_to_declared_bounds_and_scales_noise_by_column():
    wall = _wall(epsilon=1.0, delta=0.0)
    y = np.array([[10.0, 5.0, 1.0], [50.0, 1.0, 0.0]])
    assert wall.clip(y).tolist() == [[18.0, 2.0, 1.0], [50.0, 1.0, 0.0]]
    assert wall.sensitivity.tolist() == [3 * 72, 3 * 2, 3 * 1]
    rows = 100_000
    noisy = wall.apply(np.tile([[50.0, 1.0, 0.0]], (rows, 1)), rng=np.random.default_rng(7))
    mags = np.abs(noisy - [[50.0, 1.0, 0.0]]).mean(axis=0)
    expected = wall.sensitivity / 1.0
    # each column's E|V| = d_j/ε; se of an exponential mean = b/sqrt(n)
    assert np.all(np.abs(mags - expected) < Z * expected / math.sqrt(rows))


def test_wall_point_mass_leaves_clipped_values_exactly():
    wall = _wall(epsilon=1.0, delta=0.3)
    y = np.tile([[200.0, 1.0, 0.0]], (50_000, 1))
    noisy = wall.apply(y, rng=np.random.default_rng(8))
    untouched = noisy[:, 0] == 90.0  # clipped age, no noise
    n = len(y)
    assert abs(untouched.sum() - 0.3 * n) < Z * math.sqrt(n * 0.3 * 0.7)
    assert not np.any(noisy[:, 0] == 200.0)


def test_wall_gaussian_mechanism():
    wall = _wall(epsilon=2.0, delta=1e-5, mechanism="gaussian")
    noisy = wall.apply(np.zeros((40_000, 3)) + [[18, 0, 0]], rng=np.random.default_rng(9))
    sigma = wall.sensitivity * math.sqrt(2 * math.log(1.25e5)) / 2.0
    std = (noisy - [[18, 0, 0]]).std(axis=0)
    # the sample sd's standard error is about σ/sqrt(2n)
    assert np.all(np.abs(std - sigma) < Z * sigma / math.sqrt(2 * 40_000))


@pytest.mark.parametrize("bad", [np.zeros((3, 2)), np.array([[1.0, np.nan, 0.0]]), np.zeros(3)])
def test_wall_refuses_bad_matrices(bad):
    with pytest.raises(InvalidParameters):
        _wall(epsilon=1.0, delta=0.0).apply(bad, rng=np.random.default_rng(0))


def test_wall_refuses_bad_bounds_and_mechanism():
    with pytest.raises(InvalidParameters):
        ColumnBounds("x", 1, 1)
    with pytest.raises(InvalidParameters):
        PrivacyWall({"x": (0, 1)}, epsilon=1, delta=0.1, mechanism="laplace")
    with pytest.raises(InvalidParameters):
        PrivacyWall({}, epsilon=1, delta=0.1)
