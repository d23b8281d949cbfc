"""Benchmark of analytics: private learning utility, Flower rounds, CKKS latency, R(δ).

Prints one JSON object:

- ``nonprivate_accuracy``: non-private logistic regression, centralised, on scikit-learn's
  breast-cancer table (80/20 split, features scaled by declared bounds).
- ``dp_accuracy_eps1``: Opacus DP-SGD, federated over 3 hospitals, ε = 1, δ = 1e-5 (goal: within
  3 points of ``nonprivate_accuracy``).
- ``wall_accuracy_eps1``: the privacy wall (input perturbation of each hospital's matrix with the
  optimal (ε, δ) noise), federated, ε = 1.
- ``fl_seconds_per_round``: seconds per round of Flower's deployment engine on loopback (SuperLink,
  a SuperNode per hospital, the ServerApp; DP-SGD ClientApps). Null with --smoke.
- ``fhe_predict_ms``: median latency of one encrypted prediction (encrypt, evaluate, decrypt; goal ≤ 20).
- ``fhe_predictions_per_s_batched``: 4,096 patients packed per ciphertext, end to end (goal ≥ 1,000).
- ``fhe_stats_100k_s``: three hospitals each encrypt 100,000 aggregate values, the aggregator adds
  the ciphertexts, the key holder decrypts (goal ≤ 2 s).
- ``fhe_accuracy_gap``: |encrypted − plaintext| accuracy of the predictor (goal ≤ 0.01).
- ``r_delta_max_rel_error``: max relative error of R(δ) measured against analytic over
  δ ∈ [1e-6, 0.9] (goal ≤ 0.02).

Extra figures: the utility table ``{acc|auc}_{breast|toxicity}_{dpsgd|wall|none}_{fed|central}_eps{ε}``
for ε ∈ {0.5, 1, 2, 4, inf} (toxicity: the fabricated Edinburgh tables read from three vaults), and
``utility_png``, the path of the utility-against-ε figure. ``--quick`` runs ε ∈ {1, inf} on smaller
data in about a minute; ``--smoke`` only proves the script runs.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from analytics import (  # noqa: E402
    TOXICITY_BOUNDS,
    Dataset,
    TrainConfig,
    breast_cancer_dataset,
    evaluate,
    fhe,  # noqa: E402
    plot_utility,
    r_delta_table,
    scale,
    toxicity_dataset,
    train_centralised,
    train_federated,
)


def _eps_key(e: float) -> str:
    return "inf" if math.isinf(e) else f"{e:g}".replace(".", "_")


def utility(name: str, train: Dataset, test: Dataset, bounds, epsilons, *, hospitals: int, rounds: int,
            local_epochs: int, out: dict, curves: dict) -> None:
    shards = train.shard(hospitals, seed=1) if hospitals > 1 else [train]
    done: dict = {}
    for method in ("dpsgd", "wall"):
        for fed in (True, False):
            for eps in epsilons:
                m = "none" if math.isinf(eps) else method
                key = f"{name}_{m}_{'fed' if fed else 'central'}_eps{_eps_key(eps)}"
                if key not in done:  # ε = ∞ is the same non-private run for both methods
                    cfg = TrainConfig(method=m, epsilon=eps, delta=1e-5, rounds=rounds, local_epochs=local_epochs)
                    res = train_federated(shards, bounds, cfg) if fed else train_centralised(train, bounds, cfg)
                    done[key] = evaluate(res.parameters, scale(test.x, bounds), test.y)
                s = done[key]
                out[f"acc_{key}"], out[f"auc_{key}"] = round(s.accuracy, 4), round(s.auc, 4)
                curves.setdefault(f"{name} {method} {'federated' if fed else 'centralised'}", []).append(
                    (eps, s.accuracy))


def toxicity_data(patients: int) -> tuple[Dataset, Dataset]:
    from fabrication import fabricate_edinburgh, records
    from vault import Vault, VaultConfig

    frames = fabricate_edinburgh(patients, seed=2021).frames()
    root = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    by_hospital = frames["patients"].groupby("hospital")
    parts = []
    for hospital, group in by_hospital:
        ids = set(group["patient_id"])
        tables = {t: list(records(df[df["patient_id"].isin(ids)])) for t, df in frames.items()}
        with Vault.open(VaultConfig(database_url=f"sqlite:///{root / hospital}.db", key_dir=root / str(hospital),
                                    scrypt_n=2**10)) as v:
            v.ingest_tables(tables, source="bench")
            parts.append(toxicity_dataset(v, source=str(hospital)))
    return Dataset.concat(parts).split(0.2, seed=0)


def flower_seconds_per_round(hospitals: int, rounds: int) -> float:
    from analytics.flower import Federation, Site

    sites = [Site(f"hospital{i}", {"loader": "bench.analytics:breast_cancer_shard", "shard": i, "shards": hospitals})
             for i in range(hospitals)]
    with tempfile.TemporaryDirectory(prefix="bench-flower-") as work, \
            Federation(Path(work), sites, env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])}) as fed:
        run = fed.run(TrainConfig(method="dpsgd", epsilon=1.0, delta=1e-5, rounds=rounds, local_epochs=1),
                      features=30, timeout=1200)
    return run.seconds_per_round


def breast_cancer_shard(node_config):
    """The loader bench SuperNodes call: one hospital's shard of the breast-cancer training split."""
    data, bounds = breast_cancer_dataset()
    train, _ = data.split(0.2, seed=0)
    return train.shard(int(node_config["shards"]), seed=1)[int(node_config["shard"])], list(bounds)


def fhe_figures(model, x: np.ndarray, y: np.ndarray, *, single: int, stats_values: int) -> dict:
    keys = fhe.StudyKeys.create()
    public = fhe.StudyKeys.load(keys.public_bytes())
    w, b = model["weight"], float(np.ravel(model["bias"])[0])
    fhe.predict_one(keys, public, x[0], w, b)  # warm-up: the first call loads TenSEAL's code paths
    times = []
    for i in range(single):
        t = time.perf_counter()
        fhe.predict_one(keys, public, x[i % len(x)], w, b)
        times.append((time.perf_counter() - t) * 1000)
    batch = np.resize(x, (fhe.SLOTS, x.shape[1]))
    t = time.perf_counter()
    fhe.predict_batch(keys, public, batch, w, b)
    per_s = len(batch) / (time.perf_counter() - t)
    enc = fhe.predict_batch(keys, public, x, w, b)
    plain_acc = evaluate(model, x, y).accuracy
    gap = abs(float(np.mean((enc >= 0.5) == (y >= 0.5))) - plain_acc)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    per_hospital = []
    for _ in range(3):  # each hospital encrypts its values in ciphertexts of 4,096 slots
        values = rng.integers(0, 50, stats_values).astype(float)
        per_hospital.append(fhe.encrypt_many(public, values))
    totals = [fhe.add_encrypted(public, list(parts)) for parts in zip(*per_hospital, strict=True)]
    decrypted = np.concatenate([fhe.decrypt(keys, c) for c in totals])
    stats_s = time.perf_counter() - t
    assert len(decrypted) >= stats_values
    return {"fhe_predict_ms": round(statistics.median(times), 2),
            "fhe_predictions_per_s_batched": round(per_s, 1),
            "fhe_stats_100k_s": round(stats_s, 3), "fhe_accuracy_gap": round(gap, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced run, about a minute")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: proves the benchmark runs (CI); figures meaningless")
    ap.add_argument("--png", help="utility figure path (default: a temporary file)")
    args = ap.parse_args()
    quick = args.quick or args.smoke
    import torch

    torch.set_num_threads(1)
    out: dict = {"quick": quick}
    curves: dict = {}
    epsilons = [1.0, math.inf] if quick else [0.5, 1.0, 2.0, 4.0, math.inf]
    rounds, local = (1, 1) if args.smoke else (TrainConfig.rounds, TrainConfig.local_epochs)
    data, bounds = breast_cancer_dataset()
    train, test = data.split(0.2, seed=0)
    utility("breast", train, test, bounds, epsilons, hospitals=3, rounds=rounds, local_epochs=local, out=out,
            curves=curves)
    out["nonprivate_accuracy"] = out["acc_breast_none_central_epsinf"]
    out["dp_accuracy_eps1"] = out["acc_breast_dpsgd_fed_eps1"]
    out["wall_accuracy_eps1"] = out["acc_breast_wall_fed_eps1"]
    tox_train, tox_test = toxicity_data(60 if args.smoke else 200 if quick else 933)
    utility("toxicity", tox_train, tox_test, TOXICITY_BOUNDS, epsilons, hospitals=3, rounds=rounds,
            local_epochs=local, out=out, curves=curves)
    png = Path(args.png) if args.png else Path(tempfile.mkdtemp(prefix="bench-analytics-")) / "utility.png"
    plot_utility({k: v for k, v in curves.items() if k.startswith("breast")}, png,
                 title="Utility against ε (breast cancer; toxicity in the JSON)")
    out["utility_png"] = str(png)
    out["fl_seconds_per_round"] = None if args.smoke else round(flower_seconds_per_round(2 if quick else 3,
                                                                                         1 if quick else 3), 2)
    model = train_centralised(train, bounds, TrainConfig(method="none", rounds=rounds, local_epochs=local)).parameters
    out.update(fhe_figures(model, scale(test.x, bounds), test.y, single=20 if quick else 50,
                           stats_values=4096 if args.smoke else 100_000))
    rows = r_delta_table(np.logspace(-6, np.log10(0.9), 4 if quick else 16),
                         samples=100_000 if args.smoke else 1_000_000, seed=0)
    out["r_delta_max_rel_error"] = round(max(r.relative_error for r in rows), 5)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
