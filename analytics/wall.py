"""The privacy wall: the optimal (ε, δ) noise for real-valued data, and the Gaussian mechanism beside it.

The optimal noise V has density δ·Dirac(v) + (1 − δ)·ε/(2d)·exp(−ε|v|/d): with probability δ
no noise at all, otherwise Laplace with scale d/ε. Its expected magnitude is (1 − δ)·d/ε. The
classical Gaussian mechanism adds N(0, σ²) with σ = d·sqrt(2·ln(1.25/δ))/ε, whose expected
magnitude is σ·sqrt(2/π); the ratio of the two magnitudes is

    R(δ) = 2·sqrt(ln(1.25/δ)) / ((1 − δ)·sqrt(π)),

independent of ε and d. A hospital applies the wall to its matrix before anything leaves the site:
A⁺(Y) = A(Y + V). Each column j has declared bounds [lo_j, hi_j]; values are clipped to them, and
one patient's row can change the matrix by at most (hi_j − lo_j) in column j. The noise of column
j has sensitivity d_j = m·(hi_j − lo_j) for an m-column row, so a whole row's privacy loss is at
most Σ_j ε·(hi_j − lo_j)/d_j = ε.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InvalidParameters


def check_privacy(epsilon: float, delta: float, *, allow_zero_delta: bool = True) -> None:
    """Raise ``InvalidParameters`` unless ε > 0 is finite and 0 ≤ δ < 1 (0 < δ when not allowed)."""
    if not (isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon > 0):
        raise InvalidParameters(f"epsilon must be a finite number > 0, not {epsilon!r}")
    low_ok = delta >= 0 if allow_zero_delta else delta > 0
    if not (isinstance(delta, int | float) and low_ok and delta < 1):
        bound = "0 <= delta < 1" if allow_zero_delta else "0 < delta < 1"
        raise InvalidParameters(f"delta must satisfy {bound}, not {delta!r}")


def _check_sensitivity(sensitivity: float | np.ndarray) -> np.ndarray:
    d = np.asarray(sensitivity, dtype=float)
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise InvalidParameters("sensitivity must be finite and > 0")
    return d


def optimal_noise(shape: int | tuple[int, ...], *, epsilon: float, delta: float,
                  sensitivity: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Samples of the optimal (ε, δ) noise: 0 with probability δ, else Laplace(0, d/ε).

    ``sensitivity`` broadcasts against ``shape`` (a per-column vector for a matrix).
    """
    check_privacy(epsilon, delta)
    d = _check_sensitivity(sensitivity)
    laplace = rng.laplace(0.0, 1.0, size=shape) * (d / epsilon)
    keep = rng.random(size=shape) >= delta
    return np.where(keep, laplace, 0.0)


def gaussian_sigma(*, epsilon: float, delta: float, sensitivity: float | np.ndarray) -> np.ndarray:
    """σ of the classical Gaussian mechanism: d·sqrt(2·ln(1.25/δ))/ε (δ > 0)."""
    check_privacy(epsilon, delta, allow_zero_delta=False)
    return _check_sensitivity(sensitivity) * math.sqrt(2 * math.log(1.25 / delta)) / epsilon


def gaussian_noise(shape: int | tuple[int, ...], *, epsilon: float, delta: float,
                   sensitivity: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Samples of the classical Gaussian mechanism's noise N(0, σ²)."""
    sigma = gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=sensitivity)
    return rng.standard_normal(size=shape) * sigma


def optimal_magnitude(*, epsilon: float, delta: float, sensitivity: float) -> float:
    """E|V| of the optimal noise: (1 − δ)·d/ε."""
    check_privacy(epsilon, delta)
    return (1 - delta) * float(sensitivity) / epsilon


def gaussian_magnitude(*, epsilon: float, delta: float, sensitivity: float) -> float:
    """E|V| of the Gaussian mechanism: σ·sqrt(2/π)."""
    return float(gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=sensitivity)) * math.sqrt(2 / math.pi)


def r_delta(delta: float) -> float:
    """R(δ) = 2·sqrt(ln(1.25/δ)) / ((1 − δ)·sqrt(π)): Gaussian over optimal expected magnitude."""
    check_privacy(1.0, delta, allow_zero_delta=False)
    return 2 * math.sqrt(math.log(1.25 / delta)) / ((1 - delta) * math.sqrt(math.pi))


def r_delta_measured(delta: float, *, samples: int, rng: np.random.Generator, epsilon: float = 1.0,
                     sensitivity: float = 1.0) -> float:
    """R(δ) from samples: mean |Gaussian noise| over mean |optimal noise| (same ε, δ, d)."""
    if samples < 1:
        raise InvalidParameters("samples must be >= 1")
    g = np.abs(gaussian_noise(samples, epsilon=epsilon, delta=delta, sensitivity=sensitivity, rng=rng)).mean()
    o = np.abs(optimal_noise(samples, epsilon=epsilon, delta=delta, sensitivity=sensitivity, rng=rng)).mean()
    return float(g / o)


def r_delta_relative_se(delta: float, samples: int) -> float:
    """Standard error of ``r_delta_measured``'s relative error (delta method on a ratio of means).

    |Gaussian| has relative variance π/2 − 1; |optimal| has 2/(1 − δ) − 1.
    """
    return math.sqrt((math.pi / 2 - 1 + 2 / (1 - delta) - 1) / samples)


@dataclass(frozen=True)
class RDeltaRow:
    delta: float
    analytic: float
    measured: float

    @property
    def relative_error(self) -> float:
        return abs(self.measured - self.analytic) / self.analytic


DEFAULT_DELTAS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)


def r_delta_table(deltas: Sequence[float] = DEFAULT_DELTAS, *, samples: int = 1_000_000,
                  seed: int = 0) -> list[RDeltaRow]:
    """R(δ) analytic and measured from ``samples`` draws of each noise, one row per δ."""
    rng = np.random.default_rng(seed)
    return [RDeltaRow(d, r_delta(d), r_delta_measured(d, samples=samples, rng=rng)) for d in deltas]


# --------------------------------------------------------------------------- the wall on a matrix


@dataclass(frozen=True)
class ColumnBounds:
    """Declared bounds of one column: values are clipped to [low, high]."""

    name: str
    low: float
    high: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.high > self.low):
            raise InvalidParameters(f"column {self.name!r}: bounds need finite low < high, "
                                    f"not [{self.low}, {self.high}]")

    @property
    def width(self) -> float:
        return self.high - self.low


class PrivacyWall:
    """The optimal (ε, δ) noise applied to a hospital's matrix with declared column bounds.

    ``PrivacyWall(bounds, epsilon=1, delta=1e-5).apply(matrix, rng=rng)`` clips every column to
    its bounds and adds the optimal noise with per-column sensitivity d_j = m·(high_j − low_j).
    ``mechanism="gaussian"`` adds the classical Gaussian mechanism's noise instead.
    """

    def __init__(self, bounds: Sequence[ColumnBounds] | Mapping[str, tuple[float, float]], *,
                 epsilon: float, delta: float, mechanism: str = "optimal"):
        if isinstance(bounds, Mapping):
            bounds = [ColumnBounds(k, float(lo), float(hi)) for k, (lo, hi) in bounds.items()]
        self.bounds = list(bounds)
        if not self.bounds:
            raise InvalidParameters("the privacy wall needs at least one column's bounds")
        if mechanism not in ("optimal", "gaussian"):
            raise InvalidParameters(f"mechanism must be 'optimal' or 'gaussian', not {mechanism!r}")
        check_privacy(epsilon, delta, allow_zero_delta=mechanism == "optimal")
        self.epsilon, self.delta, self.mechanism = float(epsilon), float(delta), mechanism
        self.low = np.array([b.low for b in self.bounds])
        self.high = np.array([b.high for b in self.bounds])

    @property
    def columns(self) -> list[str]:
        return [b.name for b in self.bounds]

    @property
    def sensitivity(self) -> np.ndarray:
        """Per-column d_j = m·(high_j − low_j): a row's total privacy loss is at most ε."""
        return len(self.bounds) * (self.high - self.low)

    def clip(self, matrix: np.ndarray) -> np.ndarray:
        y = np.asarray(matrix, dtype=float)
        if y.ndim != 2 or y.shape[1] != len(self.bounds):
            raise InvalidParameters(f"matrix must be (rows, {len(self.bounds)}), not {y.shape}")
        if not np.all(np.isfinite(y)):
            raise InvalidParameters("matrix holds NaN or infinite values")
        return np.clip(y, self.low, self.high)

    def noise(self, shape: tuple[int, int], *, rng: np.random.Generator) -> np.ndarray:
        sampler = optimal_noise if self.mechanism == "optimal" else gaussian_noise
        return sampler(shape, epsilon=self.epsilon, delta=self.delta, sensitivity=self.sensitivity, rng=rng)

    def apply(self, matrix: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
        """Y + V with Y clipped to the declared bounds (what may leave the site)."""
        y = self.clip(matrix)
        return y + self.noise(y.shape, rng=rng)
