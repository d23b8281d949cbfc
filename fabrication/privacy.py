"""Privacy evidence for fabricated rows: exact copies, distance to closest record (DCR) against a
held-out real half, and membership-inference attacks.

A data set can pass a DCR check and still leak who was in the training data, so the report also
runs two membership-inference attacks and gives their ROC AUC (0.5: the attacker cannot tell
members from non-members; the goal is ≤ 0.55):

- **distance** — a record is guessed a member the closer it lies to a fabricated row;
- **density** (DOMIAS-style) — a record is guessed a member where the fabricated rows are denser
  than a reference sample of real non-members (k-nearest-neighbour density ratio).

Members are the rows the project was profiled from (``train``); non-members are real rows it
never saw (``holdout``). :func:`privacy_evaluation` makes that split itself: it profiles one half
of a real table, fabricates, and attacks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

MIA_GOAL = 0.55


@dataclass
class PrivacyReport:
    rows_train: int
    rows_holdout: int
    rows_fabricated: int
    exact_copies: int  # fabricated rows equal to a training row
    dcr_train_median: float  # median distance of a fabricated row to its closest training row
    dcr_holdout_median: float  # … and to its closest held-out row
    closer_to_train_share: float  # share of fabricated rows nearer to training than to held-out rows (0.5 ideal)
    mia_auc_distance: float
    mia_auc_density: float
    goal: float = MIA_GOAL

    @property
    def mia_auc(self) -> float:
        return max(self.mia_auc_distance, self.mia_auc_density)

    @property
    def ok(self) -> bool:
        return self.exact_copies == 0 and self.mia_auc <= self.goal

    def to_dict(self) -> dict:
        return {**asdict(self), "mia_auc": self.mia_auc, "ok": self.ok}

    def render(self, console) -> None:
        console.print(
            f"privacy: {self.exact_copies} exact copies; DCR median {self.dcr_train_median:.3g} to training rows vs "
            f"{self.dcr_holdout_median:.3g} to held-out rows ({self.closer_to_train_share:.1%} of fabricated rows "
            f"nearer to training, 50 % ideal); membership-inference AUC {self.mia_auc_distance:.3f} (distance), "
            f"{self.mia_auc_density:.3f} (density) — goal ≤ {self.goal} — {'ok' if self.ok else 'FAILED'}")


def _space(frames: list[pd.DataFrame]) -> list[np.ndarray]:
    """Every frame on one standardised numeric encoding (codes, day numbers, null indicators); a null
    value sits at its column's mean so only its indicator column marks it."""
    from .verify import encode

    sizes = [len(f) for f in frames]
    first = frames[0]
    rest = pd.concat(frames[1:], ignore_index=True)
    xa, xb, _ = encode(first, rest)
    x = np.vstack([xa, xb])
    sentinel = x <= -1e8
    masked = np.where(sentinel, np.nan, x)
    mean = np.nan_to_num(np.nanmean(masked[: sizes[0]], axis=0))
    x = np.where(sentinel, mean, x)
    sd = x[: sizes[0]].std(axis=0)
    sd[sd == 0] = 1.0
    x = (x - x[: sizes[0]].mean(axis=0)) / sd
    return np.split(x, np.cumsum(sizes)[:-1])


def _nearest(ref: np.ndarray, q: np.ndarray, k: int = 1) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(ref))
    return NearestNeighbors(n_neighbors=k).fit(ref).kneighbors(q)[0][:, k - 1]


def privacy_report(train: pd.DataFrame, holdout: pd.DataFrame, fake: pd.DataFrame, *, seed: int = 0,
                   k: int = 5) -> PrivacyReport:
    """Exact copies, DCR against the held-out rows and two membership-inference attacks' AUC."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    cols = [c for c in train.columns if c in fake.columns and c in holdout.columns]
    xt, xh, xf = _space([train[cols].reset_index(drop=True), holdout[cols].reset_index(drop=True),
                         fake[cols].reset_index(drop=True)])
    m = min(len(xt), len(xh))
    xt_eq = xt[rng.choice(len(xt), m, replace=False)]  # as many members as non-members
    xh_eq = xh[rng.choice(len(xh), m, replace=False)]
    d_ft = _nearest(xt, xf)
    exact = int((d_ft < 1e-9).sum())
    d_ft_eq, d_fh_eq = _nearest(xt_eq, xf), _nearest(xh_eq, xf)
    closer = float(np.mean(d_ft_eq < d_fh_eq) + 0.5 * np.mean(d_ft_eq == d_fh_eq))
    # distance attack: members are guessed nearer to the fabricated rows
    y = np.r_[np.ones(m), np.zeros(m)]
    d_to_fake = _nearest(xf, np.vstack([xt_eq, xh_eq]))
    auc_distance = float(roc_auc_score(y, -d_to_fake))
    # density attack: fabricated density over the density of a real reference sample (half the
    # held-out rows); evaluated on the other half against as many members
    perm = rng.permutation(len(xh))
    ref, evals = xh[perm[: len(xh) // 2]], xh[perm[len(xh) // 2:]]
    me = min(len(evals), len(xt))
    members = xt[rng.choice(len(xt), me, replace=False)]
    q = np.vstack([members, evals[:me]])
    score = np.log(_nearest(ref, q, k) + 1e-9) - np.log(_nearest(xf, q, k) + 1e-9)
    auc_density = float(roc_auc_score(np.r_[np.ones(me), np.zeros(me)], score))
    return PrivacyReport(len(train), len(holdout), len(fake), exact, float(np.median(d_ft_eq)),
                         float(np.median(d_fh_eq)), round(closer, 4), round(auc_distance, 4), round(auc_density, 4))


def privacy_evaluation(real: pd.DataFrame, *, seed: int = 0, name: str = "privacy", rows: int | None = None,
                       **profile_kwargs) -> PrivacyReport:
    """Split ``real`` into two random halves, profile one, fabricate as many rows, and attack: the
    report for the profiler's own output on this table."""
    from .engine import fabricate
    from .model import compile_project
    from .profiler import profile, sanitize_columns

    real = sanitize_columns(real).reset_index(drop=True)
    perm = np.random.default_rng(seed).permutation(len(real))
    half = len(real) // 2
    train, holdout = real.iloc[perm[:half]], real.iloc[perm[half:]]
    spec = profile(train, name=name, seed=seed, **profile_kwargs)
    table = next(iter(spec["tables"]))
    fake = fabricate(compile_project(spec, source=f"{name} (privacy half)"), rows=rows or len(train), seed=seed
                     ).frame(table)
    return privacy_report(train, holdout, fake, seed=seed)
