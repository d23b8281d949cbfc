"""PNG figures of analytics (matplotlib with the Agg backend: no display needed)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from .wall import RDeltaRow


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_r_delta(rows: Sequence[RDeltaRow], path: str | Path, *, samples: int,
                 highlight: float | None = None) -> Path:
    """R(δ) measured (points) and analytic (line) against δ on a log axis; ``highlight`` (a job's δ)
    is marked by a vertical line and its measured point drawn larger, with its value in the legend."""
    import numpy as np

    from .wall import r_delta

    plt = _pyplot()
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    lo, hi = min(r.delta for r in rows), max(r.delta for r in rows)
    grid = np.logspace(np.log10(lo), np.log10(hi), 200)
    ax.plot(grid, [r_delta(d) for d in grid], label="analytic R(δ)", color="#1f4e79")
    ax.scatter([r.delta for r in rows], [r.measured for r in rows], color="#c0392b", zorder=3,
               label=f"measured ({samples:,} samples per δ)")
    mine = [r for r in rows if highlight is not None and math.isclose(r.delta, highlight, rel_tol=1e-9)]
    if highlight is not None:
        ax.axvline(highlight, color="#e67e22", linestyle="--", linewidth=1.2, zorder=2)
        value = mine[0].measured if mine else r_delta(highlight)
        ax.scatter([highlight], [value], s=140, marker="D", facecolor="#e67e22", edgecolor="black",
                   zorder=4, label=f"this job: δ = {highlight:g}, R = {value:.2f}")
    ax.set_xscale("log")
    ax.set_xlabel("δ")
    ax.set_ylabel("E|Gaussian noise| / E|optimal noise|")
    ax.set_title("Privacy wall: R(δ), Gaussian mechanism vs optimal (ε, δ) noise")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _save(plt, fig, path)


def plot_utility(curves: Mapping[str, Sequence[tuple[float, float]]], path: str | Path, *,
                 title: str, ylabel: str = "accuracy") -> Path:
    """Utility against ε, one line per method; ε = ∞ is drawn at the right edge."""
    plt = _pyplot()
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    finite = sorted({e for pts in curves.values() for e, _ in pts if e != float("inf")})
    right = (max(finite) * 2) if finite else 1.0
    for name, pts in curves.items():
        xs = [right if e == float("inf") else e for e, _ in pts]
        ax.plot(xs, [v for _, v in pts], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xticks([*finite, right], [*(f"{e:g}" for e in finite), "∞"])
    ax.minorticks_off()
    ax.set_xlabel("ε")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(plt, fig, path)
