"""Fabrication benchmark: prints one JSON object.

Throughput: the Edinburgh project scaled to ~1,000,000 rows in total, with 1 and 2 workers (CSV
output written, as a user would), peak memory, rule validity; SDV's GaussianCopula on the same
(largest) table and row count beside it. Realism and privacy on public clinical tables shipped by
installed packages, none of which the profiler was tuned on — GBSG2 and lung (lifelines; lung has
nulls and dotted names), scikit-learn's breast cancer, and AIDS (half-step columns), WHAS500 and
FLCHAIN (7,874 rows, nulls in two columns, a column named ``lambda``) from scikit-survival: profile
time, distinguisher accuracy per classifier after profiling and ``--iterate`` beside the baseline and
beside SDV's GaussianCopula fitted on the same table, exact copies, and a membership-inference
attack's AUC (the profiler run on one random half, the other half held out).

    .venv/bin/python bench/fabrication.py            # full (tens of minutes on 2 cores)
    .venv/bin/python bench/fabrication.py --quick    # reduced sizes and rounds, 3 tables
    .venv/bin/python bench/fabrication.py --smoke    # seconds: tiny sizes, one table, no SDV
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
import warnings

# this file is named like the package it measures: make `import fabrication` find the package
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))


def _peak_rss_mb() -> float:
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(self_kb, child_kb) / 1024


def throughput(total_rows: int, workers: int) -> dict:
    from fabrication import fabricate, load_project, open_target

    project = load_project("edinburgh")
    per_patient = 20.95  # output rows per patient in this project (measured at 10,000 patients)
    patients = max(50, round(total_rows / per_patient))
    t0 = time.perf_counter()
    res = fabricate(project, rows=patients, workers=workers, batch_size=6000)
    with tempfile.TemporaryDirectory() as tmp:
        open_target(tmp).write(res.frames())
    secs = time.perf_counter() - t0
    return {"rows": res.total_rows, "seconds": secs, "validity": res.report.rule_validity,
            "frame": res.frame("chemocare_treatment")}


def sdv_throughput(frame, rows: int) -> float:
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    sample = frame.sample(n=min(len(frame), 20000), random_state=0)
    md = Metadata.detect_from_dataframes({"table": sample})
    t0 = time.perf_counter()
    syn = GaussianCopulaSynthesizer(md)
    syn.fit({"table": sample})
    syn.sample(rows)
    return rows / (time.perf_counter() - t0)


TABLES = {  # name → source (fabrication.sources.read_table)
    "gbsg2": "lifelines:gbsg2", "breast_cancer": "sklearn:breast_cancer", "lung": "lifelines:lung",
    "aids": "sksurv:aids", "whas500": "sksurv:whas500", "flchain": "sksurv:flchain",
}


def sdv_fake(real, rows: int):
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    md = Metadata.detect_from_dataframes({"table": real})
    syn = GaussianCopulaSynthesizer(md)
    syn.fit({"table": real})
    fake = syn.sample(rows)
    return fake["table"] if isinstance(fake, dict) else fake


def realism(name: str, real, rounds: int, repeats: int, sdv: bool) -> dict:
    from fabrication import iterate, privacy_evaluation, profile, verify
    from fabrication.profiler import sanitize_columns

    real = sanitize_columns(real)
    t0 = time.perf_counter()
    profile(real, name=name)
    out: dict = {f"profile_seconds_{name}": round(time.perf_counter() - t0, 2)}
    _, rep, _ = iterate(real, name, rounds=rounds, repeats=repeats)
    priv = privacy_evaluation(real, name=name)
    out[f"exact_copies_{name}"] = rep.copy.exact_copies + priv.exact_copies
    out[f"mia_auc_{name}"] = priv.mia_auc
    out[f"dcr_closer_to_train_{name}"] = priv.closer_to_train_share
    out[f"max_margin_{name}"] = round(rep.margin(), 4)
    out[f"iterate_rounds_{name}"] = len(rep.iterations) - 1
    sdv_rep = verify(real, sdv_fake(real, len(real)), repeats=repeats) if sdv else None
    for clf in rep.accuracy:
        out[f"accuracy_{name}_{clf}"] = round(rep.accuracy[clf], 4)
        out[f"baseline_{name}_{clf}"] = round(rep.baseline[clf], 4)
        if sdv_rep is not None:
            out[f"sdv_accuracy_{name}_{clf}"] = round(sdv_rep.accuracy[clf], 4)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="reduced sizes and rounds, three tables")
    ap.add_argument("--smoke", action="store_true", help="seconds: tiny sizes, one table, no SDV")
    ap.add_argument("--tables", help="comma-separated subset of: " + ", ".join(TABLES))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    from fabrication import read_table

    total = 5_000 if args.smoke else 60_000 if args.quick else 1_000_000
    out: dict = {"quick": args.quick or args.smoke, "smoke": args.smoke}
    w1 = throughput(total, 1)
    w2 = throughput(total, 2)
    out["rows_per_s_w1"] = round(w1["rows"] / w1["seconds"], 1)
    out["rows_per_s_w2"] = round(w2["rows"] / w2["seconds"], 1)
    out["seconds_1m_rows"] = round(w2["seconds"] * 1_000_000 / w2["rows"], 2)
    out["rule_validity"] = min(w1["validity"], w2["validity"])
    out["rows_total"] = w2["rows"]
    if not args.smoke:
        out["sdv_rows_per_s"] = round(sdv_throughput(w2["frame"], 20_000 if args.quick else len(w2["frame"])), 1)
    names = (args.tables.split(",") if args.tables else ["lung"] if args.smoke
             else ["gbsg2", "aids", "lung"] if args.quick else list(TABLES))
    rounds, repeats = (0, 1) if args.smoke else (1, 1) if args.quick else (3, 2)
    for name in names:
        real = read_table(TABLES[name])
        if args.quick and name == "breast_cancer":
            real = real.iloc[:, [0, 1, 2, 3, 4, 20, 22, 30]]
        out.update(realism(name, real, rounds, repeats, sdv=not args.smoke))
    margins = [v for k, v in out.items() if k.startswith("max_margin_")]
    out["max_margin_all_tables"] = max(margins)
    out["max_mia_auc_all_tables"] = max(v for k, v in out.items() if k.startswith("mia_auc_"))
    out["exact_copies_all_tables"] = sum(v for k, v in out.items() if k.startswith("exact_copies_"))
    out["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
