"""Distributions: the proposals the solver starts from.

Each distribution can draw directly (numpy's fast generators, used for independent columns) and map
uniforms through its inverse CDF (``ppf``, used by the Correlation operator's Gaussian copula, so a
correlated column keeps exactly its own marginal). ``moments`` gives what the diagnostic report
compares the output against, and ``fit_best`` is what the profiler uses to turn a real column into a
rule without copying its values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

KINDS = (
    "normal", "uniform", "exponential", "beta", "gamma", "rayleigh", "lognorm", "weibull", "poisson",
    "categorical", "histogram", "bernoulli",
)


class DistributionError(ValueError):
    pass


@dataclass(frozen=True)
class Dist:
    """A parameterised distribution; ``params`` are floats (dates already converted to day numbers).

    Continuous kinds use scipy's conventions with explicit names:
    normal(mean, sd) · uniform(min, max) · exponential(scale, loc=0) · beta(a, b, loc=0, scale=1) ·
    gamma(shape, scale, loc=0) · rayleigh(scale, loc=0) · lognorm(sigma, scale, loc=0)
    (``scale = exp(mu)``) · weibull(shape, scale, loc=0) · poisson(lam, loc=0) ·
    categorical(values, weights) · histogram(edges, weights) · bernoulli(p).
    """

    kind: str
    params: tuple[tuple[str, float], ...] = ()
    values: tuple = ()  # categorical support (labels or numbers)
    weights: tuple[float, ...] = ()
    edges: tuple[float, ...] = ()

    def p(self, name: str, default: float | None = None) -> float:
        for k, v in self.params:
            if k == name:
                return float(v)
        if default is None:
            raise DistributionError(f"{self.kind} needs parameter {name!r}")
        return default

    # ----------------------------------------------------------------- scipy frozen form
    def frozen(self):
        k = self.kind
        if k == "normal":
            return stats.norm(self.p("mean"), self.p("sd"))
        if k == "uniform":
            lo, hi = self.p("min"), self.p("max")
            return stats.uniform(lo, hi - lo)
        if k == "exponential":
            return stats.expon(self.p("loc", 0.0), self.p("scale"))
        if k == "beta":
            return stats.beta(self.p("a"), self.p("b"), self.p("loc", 0.0), self.p("scale", 1.0))
        if k == "gamma":
            return stats.gamma(self.p("shape"), self.p("loc", 0.0), self.p("scale"))
        if k == "rayleigh":
            return stats.rayleigh(self.p("loc", 0.0), self.p("scale"))
        if k == "lognorm":
            return stats.lognorm(self.p("sigma"), self.p("loc", 0.0), self.p("scale"))
        if k == "weibull":
            return stats.weibull_min(self.p("shape"), self.p("loc", 0.0), self.p("scale"))
        if k == "poisson":
            return stats.poisson(self.p("lam"), self.p("loc", 0.0))
        if k == "bernoulli":
            return stats.bernoulli(self.p("p"))
        return None

    def validate(self) -> None:
        """Raise DistributionError when a parameter is out of its domain."""
        k = self.kind
        if k not in KINDS:
            raise DistributionError(f"unknown distribution {k!r} (known: {', '.join(KINDS)})")
        positive = {
            "normal": ["sd"], "exponential": ["scale"], "beta": ["a", "b", "scale"], "gamma": ["shape", "scale"],
            "rayleigh": ["scale"], "lognorm": ["sigma", "scale"], "weibull": ["shape", "scale"], "poisson": [],
        }.get(k, [])
        for name in positive:
            if self.p(name, 1.0) <= 0:
                raise DistributionError(f"{k}: {name} must be > 0")
        if k == "uniform" and self.p("max") < self.p("min"):
            raise DistributionError("uniform: max must be ≥ min")
        if k == "poisson" and self.p("lam") < 0:
            raise DistributionError("poisson: lam must be ≥ 0")
        if k == "bernoulli" and not 0 <= self.p("p") <= 1:
            raise DistributionError("bernoulli: p must be within [0, 1]")
        if k == "categorical":
            if not self.values or len(self.values) != len(self.weights):
                raise DistributionError("categorical: needs values and as many weights")
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise DistributionError("categorical: weights must be ≥ 0 and not all 0")
        if k == "histogram":
            if len(self.edges) != len(self.weights) + 1 or len(self.weights) == 0:
                raise DistributionError("histogram: needs n+1 edges for n weights")
            if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
                raise DistributionError("histogram: edges must increase")
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise DistributionError("histogram: weights must be ≥ 0 and not all 0")

    # ----------------------------------------------------------------- sampling
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        k = self.kind
        if k == "normal":
            return rng.normal(self.p("mean"), self.p("sd"), n)
        if k == "uniform":
            return rng.uniform(self.p("min"), self.p("max"), n)
        if k == "exponential":
            return self.p("loc", 0.0) + rng.exponential(self.p("scale"), n)
        if k == "beta":
            return self.p("loc", 0.0) + self.p("scale", 1.0) * rng.beta(self.p("a"), self.p("b"), n)
        if k == "gamma":
            return self.p("loc", 0.0) + rng.gamma(self.p("shape"), self.p("scale"), n)
        if k == "rayleigh":
            return self.p("loc", 0.0) + rng.rayleigh(self.p("scale"), n)
        if k == "lognorm":
            return self.p("loc", 0.0) + rng.lognormal(math.log(self.p("scale")), self.p("sigma"), n)
        if k == "weibull":
            return self.p("loc", 0.0) + self.p("scale") * rng.weibull(self.p("shape"), n)
        if k == "poisson":
            return self.p("loc", 0.0) + rng.poisson(self.p("lam"), n)
        if k == "bernoulli":
            return rng.random(n) < self.p("p")
        return self.ppf(rng.random(n))

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Inverse CDF; categorical returns indices into ``values``."""
        k = self.kind
        if k == "categorical":
            w = np.asarray(self.weights, dtype=float)
            cum = np.cumsum(w / w.sum())
            cum[-1] = 1.0
            return np.minimum(np.searchsorted(cum, u, side="right"), len(w) - 1)
        if k == "histogram":
            w = np.asarray(self.weights, dtype=float)
            e = np.asarray(self.edges, dtype=float)
            cum = np.r_[0.0, np.cumsum(w / w.sum())]
            return np.interp(u, cum, e)
        if k == "bernoulli":
            return u > 1 - self.p("p")
        f = self.frozen()
        out = f.ppf(np.clip(u, 1e-12, 1 - 1e-12))
        return out

    def cdf(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "histogram":
            w = np.asarray(self.weights, dtype=float)
            cum = np.r_[0.0, np.cumsum(w / w.sum())]
            return np.interp(x, np.asarray(self.edges, dtype=float), cum)
        f = self.frozen()
        if f is None:
            raise DistributionError(f"{self.kind} has no continuous CDF")
        return f.cdf(x)

    @property
    def continuous(self) -> bool:
        return self.kind not in ("categorical", "poisson", "bernoulli")

    def moments(self) -> tuple[float, float] | None:
        """(mean, sd) asked for, to compare in the diagnostic report."""
        k = self.kind
        if k == "categorical":
            try:
                v = np.asarray(self.values, dtype=float)
            except (TypeError, ValueError):
                return None
            w = np.asarray(self.weights, dtype=float) / sum(self.weights)
            m = float((v * w).sum())
            return m, float(math.sqrt(max(((v - m) ** 2 * w).sum(), 0.0)))
        if k == "histogram":
            e = np.asarray(self.edges, dtype=float)
            w = np.asarray(self.weights, dtype=float) / sum(self.weights)
            mid = (e[:-1] + e[1:]) / 2
            m = float((mid * w).sum())
            var = float((((e[1:] - e[:-1]) ** 2) / 12 * w).sum() + ((mid - m) ** 2 * w).sum())
            return m, math.sqrt(var)
        f = self.frozen()
        m, v = f.stats(moments="mv")
        return float(m), float(math.sqrt(v))

    def describe(self) -> str:
        if self.kind == "categorical":
            tot = sum(self.weights)
            items = [f"{v}:{w / tot:.3f}" for v, w in zip(self.values, self.weights, strict=True)][:8]
            return f"categorical({', '.join(items)}{', …' if len(self.values) > 8 else ''})"
        if self.kind == "histogram":
            return f"histogram({len(self.weights)} bins over [{self.edges[0]:g}, {self.edges[-1]:g}])"
        return f"{self.kind}(" + ", ".join(f"{k}={v:g}" for k, v in self.params) + ")"

    def to_spec(self) -> dict:
        """The YAML form (inverse of ``from_spec``)."""
        d: dict = {"kind": self.kind}
        d.update({k: _clean(v) for k, v in self.params})
        if self.kind == "categorical":
            d["weights"] = {_clean(v): round(float(w), 6) for v, w in zip(self.values, self.weights, strict=True)}
        if self.kind == "histogram":
            d["edges"] = [_clean(e) for e in self.edges]
            d["weights"] = [round(float(w), 6) for w in self.weights]
        return d


def _clean(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return int(v)
        return float(f"{v:.6g}")
    return v


# ----------------------------------------------------------------------- fitting (profiler)

_FIT_CANDIDATES = ("normal", "lognorm", "gamma", "weibull", "exponential", "uniform", "beta", "rayleigh")


def fit(kind: str, x: np.ndarray) -> Dist:
    x = np.asarray(x, dtype=float)
    lo, hi = float(x.min()), float(x.max())
    if kind == "normal":
        return Dist("normal", (("mean", float(x.mean())), ("sd", float(max(x.std(ddof=1), 1e-9)))))
    if kind == "uniform":
        return Dist("uniform", (("min", lo), ("max", hi)))
    if kind == "exponential":
        loc, scale = stats.expon.fit(x)
        return Dist("exponential", (("scale", float(scale)), ("loc", float(loc))))
    if kind == "lognorm":
        s, loc, scale = stats.lognorm.fit(x, floc=min(lo - 1e-9, 0.0) if lo > 0 else lo - 1e-6 * (hi - lo + 1))
        return Dist("lognorm", (("sigma", float(s)), ("scale", float(scale)), ("loc", float(loc))))
    if kind == "gamma":
        a, loc, scale = stats.gamma.fit(x, floc=min(lo, 0.0) if lo >= 0 else lo - 1e-6 * (hi - lo + 1))
        return Dist("gamma", (("shape", float(a)), ("scale", float(scale)), ("loc", float(loc))))
    if kind == "weibull":
        c, loc, scale = stats.weibull_min.fit(x, floc=min(lo, 0.0) if lo >= 0 else lo - 1e-6 * (hi - lo + 1))
        return Dist("weibull", (("shape", float(c)), ("scale", float(scale)), ("loc", float(loc))))
    if kind == "rayleigh":
        loc, scale = stats.rayleigh.fit(x)
        return Dist("rayleigh", (("scale", float(scale)), ("loc", float(loc))))
    if kind == "beta":
        span = hi - lo or 1.0
        a, b, _, _ = stats.beta.fit((x - lo + 1e-6 * span) / (span * (1 + 2e-6)), floc=0, fscale=1)
        return Dist("beta", (("a", float(a)), ("b", float(b)), ("loc", lo - 1e-6 * span), ("scale", span * (1 + 2e-6))))
    raise DistributionError(kind)


def histogram(x: np.ndarray, bins: int, integer: bool = False) -> Dist:
    """Empirical histogram over equal-width bins between the extremes; integer data gets unit bins."""
    x = np.asarray(x, dtype=float)
    lo, hi = float(x.min()), float(x.max())
    if integer and hi - lo + 1 <= bins:
        edges = np.arange(lo - 0.5, hi + 1.5, 1.0)
    else:
        if hi <= lo:
            hi = lo + 1.0
        edges = np.linspace(lo, hi, bins + 1)
        if integer:
            edges[0] -= 0.5
            edges[-1] += 0.5
    w, _ = np.histogram(x, edges)
    return Dist("histogram", edges=tuple(float(e) for e in edges), weights=tuple(float(v) for v in w))


def fit_best(x: np.ndarray, integer: bool = False) -> tuple[Dist, float]:
    """The candidate with the smallest Kolmogorov–Smirnov distance; (dist, ks)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 5 or x.min() == x.max():
        return Dist("uniform", (("min", float(x.min())), ("max", float(x.max())))), 0.0
    best: tuple[Dist, float] | None = None
    for kind in _FIT_CANDIDATES:
        if kind in ("lognorm", "gamma", "weibull", "exponential", "rayleigh") and x.min() < 0:
            continue
        try:
            with np.errstate(all="ignore"):
                d = fit(kind, x)
                d.validate()
                xs = x + (np.random.default_rng(0).uniform(-0.5, 0.5, len(x)) if integer else 0.0)
                ks = float(stats.kstest(xs, d.cdf).statistic)
        except Exception:  # noqa: BLE001 - a failed fit just drops that candidate
            continue
        if np.isfinite(ks) and (best is None or ks < best[1]):
            best = (d, ks)
    assert best is not None
    return best
