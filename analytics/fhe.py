"""Homomorphic-encryption analytics with TenSEAL (CKKS on Microsoft SEAL).

- ``StudyKeys.create()`` makes a study's CKKS context at 128-bit security (poly modulus degree 8192,
  coefficient modulus 60+40+60 = 160 bits, within SEAL's 218-bit bound for 128-bit security at
  that degree). ``public_bytes()`` is the context without the secret key (what hospitals and the
  aggregator get); ``secret_bytes()`` stays with the study's key holder.
- Encrypted statistics: each hospital encrypts its aggregates (``StatsLayout``: count, sums and
  sums of squares of every feature, the histogram of the worst toxicity grade per regimen and per
  stratum — bands of declared features, ``Stratum``, e.g. Charlson index × performance status) under the
  public context; ``add_encrypted`` adds serialized ciphertexts with the public context only; the key
  holder decrypts the total (``decrypt_stats``), and the privacy wall may noise it before release.
- Encrypted inference of the logistic-regression predictor: the client encrypts a patient's scaled
  features, the server multiplies them by its plaintext weights on the ciphertext and masks each
  product (masks summing to the bias), the client decrypts, sums the shares into the logit and
  applies the sigmoid — no Galois rotation on the way (``encrypted_logit``). ``predict_batch`` packs many patients per ciphertext (one
  ciphertext per feature, a patient per slot).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InvalidParameters
from .progress import progress
from .wall import ColumnBounds, optimal_noise

POLY_MODULUS_DEGREE = 8192
COEFF_MOD_BIT_SIZES = (60, 40, 60)  # one multiplicative level: all a linear predictor needs
GLOBAL_SCALE = 2**40
#: SEAL's largest total coefficient modulus for 128-bit security at each degree (HomomorphicEncryption.org).
MAX_BITS_128 = {4096: 109, 8192: 218, 16384: 438, 32768: 881}
SLOTS = POLY_MODULUS_DEGREE // 2


def _ts():
    import tenseal

    return tenseal


@dataclass
class StudyKeys:
    """A study's CKKS context. Built with the secret key; ``public_bytes`` drops it."""

    context: object

    @classmethod
    def create(cls) -> StudyKeys:
        ts = _ts()
        assert sum(COEFF_MOD_BIT_SIZES) <= MAX_BITS_128[POLY_MODULUS_DEGREE]
        ctx = ts.context(ts.SCHEME_TYPE.CKKS, POLY_MODULUS_DEGREE, coeff_mod_bit_sizes=list(COEFF_MOD_BIT_SIZES))
        ctx.global_scale = GLOBAL_SCALE  # no Galois keys: nothing here rotates
        return cls(ctx)

    @classmethod
    def load(cls, data: bytes) -> StudyKeys:
        try:
            return cls(_ts().context_from(data))
        except Exception as exc:  # TenSEAL raises plain ValueError/RuntimeError on bad bytes
            raise InvalidParameters(f"not a serialized TenSEAL context: {exc}") from exc

    @property
    def is_private(self) -> bool:
        return bool(self.context.is_private())

    def public_bytes(self) -> bytes:
        return self.context.serialize(save_public_key=True, save_secret_key=False, save_galois_keys=True,
                                      save_relin_keys=True)

    def secret_bytes(self) -> bytes:
        if not self.is_private:
            raise InvalidParameters("this context holds no secret key")
        return self.context.serialize(save_secret_key=True)


def _vector(keys: StudyKeys, values: Sequence[float]):
    if len(values) > SLOTS:
        raise InvalidParameters(f"at most {SLOTS} values fit one ciphertext, not {len(values)}")
    return _ts().ckks_vector(keys.context, [float(v) for v in values])


def encrypt(keys: StudyKeys, values: Sequence[float]) -> bytes:
    """One CKKS ciphertext of ``values`` (≤ 4096), serialized."""
    return _vector(keys, values).serialize()


def encrypt_many(keys: StudyKeys, values: Sequence[float]) -> list[bytes]:
    """``values`` of any length as ciphertexts of at most 4,096 slots each (a progress bar on a
    terminal: a hospital's 100,000 aggregates are 25 ciphertexts)."""
    values = np.asarray(values, float).ravel()
    chunks = range(0, len(values), SLOTS)
    return [encrypt(keys, values[i:i + SLOTS]) for i in progress(chunks, description="encrypting",
                                                                   total=len(chunks))]


def add_encrypted(public: StudyKeys, ciphertexts: Sequence[bytes]) -> bytes:
    """The aggregator's sum of serialized ciphertexts, with a public context (no secret key needed)."""
    if not ciphertexts:
        raise InvalidParameters("nothing to add")
    ts = _ts()
    total = ts.ckks_vector_from(public.context, ciphertexts[0])
    for c in ciphertexts[1:]:
        total += ts.ckks_vector_from(public.context, c)
    return total.serialize()


def decrypt(keys: StudyKeys, ciphertext: bytes) -> np.ndarray:
    if not keys.is_private:
        raise InvalidParameters("decryption needs the study's secret key")
    return np.asarray(_ts().ckks_vector_from(keys.context, ciphertext).decrypt())


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Stratum:
    """Bands of one feature the grade histograms are split by: band ``i`` holds the values ``v`` with
    ``edges[i-1] <= v < edges[i]`` (the first from −∞, the last to +∞); ``labels`` name the bands."""

    feature: str
    edges: tuple[float, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.edges) + 1 or list(self.edges) != sorted(self.edges):
            raise InvalidParameters(f"stratum {self.feature}: {len(self.edges) + 1} labels for increasing edges")

    def band(self, value: float) -> int:
        return bisect.bisect_right(self.edges, float(value))

    def to_dict(self) -> dict:
        return {"feature": self.feature, "edges": list(self.edges), "labels": list(self.labels)}


@dataclass(frozen=True)
class StatsLayout:
    """Slots of a hospital's aggregate vector: count, Σx, Σx² per feature, and the histogram
    regimen × stratum cell × grade (one cell — the whole cohort — without ``strata``; a cell is one
    band of each stratum, in ``itertools.product`` order).

    Features are clipped to their declared bounds, so one row's effect on each slot is bounded:
    adding or removing a row changes the count by 1, Σx_j by at most max(|low_j|, |high_j|), Σx_j²
    by at most max(low_j², high_j²) and one histogram bin by 1 — a row falls in exactly one cell, so
    stratifying adds no slot a row changes and no noise per bin (``sensitivity``).
    """

    bounds: tuple[ColumnBounds, ...]
    regimens: tuple[str, ...]
    grades: int = 6  # CTCAE 0..5
    strata: tuple[Stratum, ...] = ()

    def __post_init__(self) -> None:
        unknown = [s.feature for s in self.strata if s.feature not in self.features]
        if unknown:
            raise InvalidParameters(f"strata of features the layout does not hold: {', '.join(unknown)}")
        if self.size > SLOTS:
            raise InvalidParameters(f"{self.size} slots are more than one ciphertext's {SLOTS}")

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bounds)

    @property
    def cells(self) -> list[tuple[str, ...]]:
        """The strata's cells, each a tuple of band labels (one empty cell without strata)."""
        return list(itertools.product(*(s.labels for s in self.strata)))

    def cell_of(self, row: Sequence[float]) -> int:
        """The cell index of one (clipped) feature row."""
        index = 0
        for s in self.strata:
            index = index * len(s.labels) + s.band(row[self.features.index(s.feature)])
        return index

    @property
    def size(self) -> int:
        return 1 + 2 * len(self.bounds) + len(self.regimens) * len(self.cells) * self.grades

    def sensitivity(self) -> np.ndarray:
        """Per-slot d_k = K·Δ_k, K = 2 + 2F slots one row can change: the privacy loss is at most ε."""
        lo = np.array([b.low for b in self.bounds])
        hi = np.array([b.high for b in self.bounds])
        reach = np.maximum(np.abs(lo), np.abs(hi))
        delta = np.concatenate([[1.0], reach, reach**2, np.ones(len(self.regimens) * len(self.cells) * self.grades)])
        return (2 + 2 * len(self.bounds)) * delta

    def vector(self, x: np.ndarray, regimen: Sequence[str], grade: Sequence[int]) -> np.ndarray:
        """The plaintext aggregates of rows ``x`` (features, clipped), their regimens and worst grades."""
        f = len(self.bounds)
        x = np.clip(np.asarray(x, float), [b.low for b in self.bounds], [b.high for b in self.bounds])
        out = np.zeros(self.size)
        out[0] = len(x)
        out[1:1 + f] = x.sum(axis=0)
        out[1 + f:1 + 2 * f] = (x * x).sum(axis=0)
        base = 1 + 2 * f
        index = {r: i for i, r in enumerate(self.regimens)}
        cells = len(self.cells)
        for row, r, g in zip(x, regimen, grade, strict=True):
            if r in index and 0 <= int(g) < self.grades:
                out[base + (index[r] * cells + self.cell_of(row)) * self.grades + int(g)] += 1
        return out

    def noisy(self, vector: np.ndarray, *, epsilon: float, delta: float, rng: np.random.Generator) -> np.ndarray:
        """The privacy wall on a decrypted aggregate: the optimal (ε, δ) noise, per-slot sensitivity."""
        v = np.asarray(vector, float)[: self.size]
        return v + optimal_noise(self.size, epsilon=epsilon, delta=delta, sensitivity=self.sensitivity(), rng=rng)

    def read(self, vector: np.ndarray) -> dict:
        """Named statistics of a (decrypted, summed) aggregate vector."""
        v = np.asarray(vector, float)
        f = len(self.features)
        n = max(float(np.round(v[0])), 0.0)  # after the wall's noise, clamping is post-processing
        sums, squares = v[1:1 + f], v[1 + f:1 + 2 * f]
        mean = sums / n if n else np.full(f, np.nan)
        var = squares / n - mean**2 if n else np.full(f, np.nan)
        raw = v[1 + 2 * f:self.size].reshape(len(self.regimens), len(self.cells), self.grades)

        def counts(h: np.ndarray) -> dict[str, list[int]]:  # rounding and clamping: post-processing
            return {r: [int(c) for c in row] for r, row in zip(self.regimens, np.maximum(np.round(h), 0), strict=True)}

        out = {"count": n,
               "mean": dict(zip(self.features, mean.tolist(), strict=True)),
               "variance": dict(zip(self.features, np.maximum(var, 0).tolist(), strict=True)),
               "grade_histogram": counts(raw.sum(axis=1))}  # the whole cohort: the cells' noisy bins summed
        if self.strata:
            out["strata"] = {"by": [s.to_dict() for s in self.strata],
                             "cells": [{"bands": dict(zip((s.feature for s in self.strata), cell, strict=True)),
                                        "grade_histogram": counts(raw[:, i, :])}
                                       for i, cell in enumerate(self.cells)]}
        return out


# --------------------------------------------------------------------------- inference


#: standard deviation of the server's masks on the products w_j·x_j (|w_j·x_j| is of order 1; the
#: masked values stay far below the 2^19 the last modulus leaves above the 2^40 scale)
MASK_SCALE = 1024.0


def encrypted_logit(public: StudyKeys, encrypted_features: bytes, weight: np.ndarray, bias: float, *,
                    rng: np.random.Generator | None = None) -> bytes:
    """Server side: the products w_j·x_j of one patient's encrypted features with the plaintext
    weights, each plus a fresh random mask r_j (Σ r_j = b), on the ciphertext (public context).
    The reply decrypts to shares whose *sum* is the logit w·x + b: the client sums them
    (:func:`logit_of`), so no rotation is needed (a slot sum costs one Galois rotation per doubling),
    and each share alone is masked, so the client learns the logit, not the weights."""
    enc = _ts().ckks_vector_from(public.context, encrypted_features)
    w = np.ravel(np.asarray(weight, float))
    if enc.size() != len(w):
        raise InvalidParameters(f"{enc.size()} encrypted features for {len(w)} weights")
    mask = (rng or np.random.default_rng()).normal(0.0, MASK_SCALE, len(w))
    mask += (float(bias) - mask.sum()) / len(w)
    return (enc * w.tolist() + mask.tolist()).serialize()


def logit_of(keys: StudyKeys, reply: bytes) -> float:
    """Client side: decrypt the server's masked shares and sum them into the logit."""
    return float(np.sum(decrypt(keys, reply)))


def predict_one(keys: StudyKeys, public: StudyKeys, features: np.ndarray, weight: np.ndarray, bias: float) -> float:
    """Client encrypts, server evaluates, client decrypts: P(toxicity) of one patient."""
    logit = logit_of(keys, encrypted_logit(public, encrypt(keys, np.ravel(features)), weight, bias))
    return float(1 / (1 + np.exp(-logit)))


def encrypt_columns(keys: StudyKeys, x: np.ndarray) -> list[bytes]:
    """Client side of batched inference: one ciphertext per feature, a patient per slot."""
    if x.shape[0] > SLOTS:
        raise InvalidParameters(f"at most {SLOTS} patients per batch, not {x.shape[0]}")
    return [encrypt(keys, x[:, j]) for j in range(x.shape[1])]


def encrypted_logits_batch(public: StudyKeys, columns: Sequence[bytes], weight: np.ndarray, bias: float) -> bytes:
    """Server side of batched inference: Σ_j w_j·column_j + b, all patients at once."""
    ts = _ts()
    w = np.ravel(weight)
    if len(w) != len(columns):
        raise InvalidParameters(f"{len(columns)} encrypted columns for {len(w)} weights")
    total = ts.ckks_vector_from(public.context, columns[0]) * float(w[0])
    for wj, c in zip(w[1:], columns[1:], strict=True):
        total += ts.ckks_vector_from(public.context, c) * float(wj)
    return (total + float(bias)).serialize()


def predict_many(keys: StudyKeys, public: StudyKeys, x: np.ndarray, weight: np.ndarray, bias: float) -> np.ndarray:
    """P(toxicity) of any number of patients, 4,096 per ciphertext (a progress bar on a terminal)."""
    x = np.asarray(x, float)
    starts = range(0, len(x), SLOTS)
    parts = [predict_batch(keys, public, x[i:i + SLOTS], weight, bias)
             for i in progress(starts, description="encrypted predictions", total=len(starts))]
    return np.concatenate(parts) if parts else np.zeros(0)


def predict_batch(keys: StudyKeys, public: StudyKeys, x: np.ndarray, weight: np.ndarray, bias: float) -> np.ndarray:
    """P(toxicity) of up to 4096 patients, evaluated under encryption in one pass."""
    logits = decrypt(keys, encrypted_logits_batch(public, encrypt_columns(keys, x), weight, bias))[: len(x)]
    return 1 / (1 + np.exp(-logits))
