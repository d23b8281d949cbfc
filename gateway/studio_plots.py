"""The fabrication studio's plots, drawn by the server (matplotlib, SVG with text kept as text):
every rule's validity, the distinguisher against its baseline, the features that give fabricated
rows away, the privacy attacks against their goal, and the most telling columns real vs fabricated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REAL, FAKE, BASE, WARN = "#1f5f8b", "#d9822b", "#9aa5b1", "#b3261e"


def _fig(height: float = 3.2, width: float = 7.0, ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False})
    return plt, plt.subplots(1, ncols, figsize=(width, height))


def _save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def _done(plt, fig, ax, path: Path, title: str, *, xlabel: str = "", ylabel: str = "", legend: bool = False) -> str:
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(loc="lower right", frameon=False)
    _save(plt, fig, path)
    return path.name


def _barh(ax, labels: list[str], values: list[float], color) -> None:
    """Horizontal bars, the first label on top."""
    ax.barh(range(len(values)), values, color=color)
    ax.set_yticks(range(len(values)), labels)
    ax.invert_yaxis()


def draw(out: Path, report: dict[str, Any], verified: dict[str, Any] | None, real=None, fake=None) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    names = [rules(out / "rules.svg", report)]
    if verified:
        names += [distinguisher(out / "distinguisher.svg", verified), features(out / "features.svg", verified)]
        if verified.get("privacy"):
            names.append(privacy(out / "privacy.svg", verified["privacy"]))
        if real is not None and fake is not None:
            names.append(columns(out / "columns.svg", verified, real, fake))
    return [n for n in names if n]


def rules(path: Path, report: dict[str, Any], limit: int = 30) -> str:
    """Validity of every hard rule, lowest first: each rule that fails somewhere on a bar of its own,
    the rules that hold on every row as one bar per table (one bar per rule when there are few)."""
    rs = report.get("rules", [])
    grouped = len(rs) > limit
    failing = sorted(((r["name"], r["validity"]) for r in rs if r["validity"] < 1), key=lambda x: (x[1], x[0]))
    items = failing[:limit]
    if grouped:
        per_table: dict[str, int] = {}
        for r in rs:
            if r["validity"] >= 1:
                per_table[r["table"]] = per_table.get(r["table"], 0) + 1
        items += [(f"{t}: {n} rules at 100 %", 1.0) for t, n in per_table.items()]
    else:
        items += sorted((r["name"], r["validity"]) for r in rs if r["validity"] >= 1)
    plt, (fig, ax) = _fig(height=max(2.0, 0.24 * len(items) + 1.1))
    labels = [n if len(n) <= 48 else n[:46] + "…" for n, _ in items]
    _barh(ax, labels, [100 * v for _, v in items], [REAL if v >= 1 else WARN for _, v in items])
    ax.set_xlim(0, 100)
    held = sum(1 for r in rs if r["validity"] >= 1)
    return _done(plt, fig, ax, path, f"{held} of {len(rs)} rules hold on every row", xlabel="rows satisfying the rule (%)")


def distinguisher(path: Path, v: dict[str, Any]) -> str:
    import numpy as np

    clf = list(v["accuracy"])
    x = np.arange(len(clf))
    plt, (fig, ax) = _fig()
    ax.bar(x - 0.2, [v["baseline"][c] for c in clf], 0.4, color=BASE, label="baseline: real vs real")
    ax.bar(x + 0.2, [v["accuracy"][c] for c in clf], 0.4, color=FAKE, label="real vs fabricated")
    ax.axhline(0.5, color="#333", lw=0.8, ls="--")
    ax.set_xticks(x, [c.replace("_", " ") for c in clf])
    ax.set_ylim(0, 1)
    return _done(plt, fig, ax, path, "Can a classifier tell fabricated rows from real ones? (largest margin "
                 f"{v['max_margin_over_baseline']:+.3f})", ylabel="cross-validated accuracy", legend=True)


def features(path: Path, v: dict[str, Any], limit: int = 12) -> str:
    feats = v.get("features", [])[:limit]
    plt, (fig, ax) = _fig(height=max(2.0, 0.26 * len(feats) + 1.0))
    _barh(ax, [n for n, _ in feats], [w for _, w in feats], FAKE)
    return _done(plt, fig, ax, path, "The features that give fabricated rows away",
                 xlabel="importance in the random forest separating real from fabricated")


def privacy(path: Path, p: dict[str, Any]) -> str:
    plt, (fig, ax) = _fig(height=2.6)
    names = ["distance attack", "density attack", "nearer to training"]
    vals = [p["mia_auc_distance"], p["mia_auc_density"], p["closer_to_train_share"]]
    _barh(ax, names, vals, [REAL if val <= p["goal"] else WARN for val in vals])
    ax.axvline(0.5, color="#333", lw=0.8, ls="--")
    ax.axvline(p["goal"], color=WARN, lw=1.0, ls=":", label=f"goal ≤ {p['goal']}")
    ax.set_xlim(0, 1)
    return _done(plt, fig, ax, path, f"Privacy: {p['exact_copies']} exact copies of real rows", legend=True,
                 xlabel="membership-inference ROC AUC (0.5: a guess) · share of rows nearer to training (0.5 ideal)")


def _numbers(s):
    """A column as numbers (dates as matplotlib day numbers), or None when it is not numeric."""
    import pandas as pd

    n = pd.to_numeric(s, errors="coerce")
    if n.notna().all():
        return n.astype(float)
    d = pd.to_datetime(s, errors="coerce", format="%Y-%m-%d")
    if d.notna().all():
        return (d - pd.Timestamp("1970-01-01")).dt.days.astype(float)  # matplotlib's epoch: 1970-01-01
    return None


def columns(path: Path, v: dict[str, Any], real, fake, k: int = 3) -> str | None:
    """The ``k`` most distinguishing columns, real vs fabricated, side by side."""
    import numpy as np
    import pandas as pd

    mapping = v.get("columns", {})
    back = {b: a for a, b in mapping.items()}
    picked: list[str] = []
    for name, _ in v.get("features", []):
        col = name.removesuffix("__null")
        if col in fake.columns and back.get(col, col) in real.columns and col not in picked:
            picked.append(col)
        if len(picked) == k:
            break
    if not picked:
        return None
    plt, (fig, axes) = _fig(height=2.6, width=3.2 * len(picked), ncols=len(picked))
    axes = np.atleast_1d(axes)
    for ax, col in zip(axes, picked, strict=False):
        r, f = real[back.get(col, col)].dropna(), fake[col].dropna()
        rn, fn = _numbers(r), _numbers(f)
        dates = rn is not None and r.dtype == object
        if rn is not None and fn is not None and r.nunique() > 12:
            edges = np.histogram_bin_edges(np.r_[rn.to_numpy(float), fn.to_numpy(float)], bins=20)
            ax.hist(rn, bins=edges, density=True, alpha=0.55, color=REAL, label="real")
            ax.hist(fn, bins=edges, density=True, alpha=0.55, color=FAKE, label="fabricated")
            if dates:
                import matplotlib.dates as mdates

                loc = mdates.AutoDateLocator(minticks=2, maxticks=5)
                ax.xaxis.set_major_locator(loc)
                ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
            ax.set_yticks([])
        else:
            cats = list(pd.concat([r.astype(str), f.astype(str)]).value_counts().index[:12])
            x = np.arange(len(cats))
            ax.bar(x - 0.2, [r.astype(str).eq(c).mean() for c in cats], 0.4, color=REAL, label="real")
            ax.bar(x + 0.2, [f.astype(str).eq(c).mean() for c in cats], 0.4, color=FAKE, label="fabricated")
            ax.set_xticks(x, [c[:10] for c in cats], rotation=45, ha="right")
        ax.set_title(col)
    axes[0].legend(frameon=False)
    _save(plt, fig, path)
    return path.name
