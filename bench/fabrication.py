"""Fabrication benchmark: prints one JSON object.

Throughput: the Edinburgh project scaled to ~1,000,000 rows in total, with 1 and 2 workers (CSV
output written, as a user would), peak memory, rule validity; SDV's GaussianCopula on the same
(largest) table and row count beside it. Realism: distinguisher accuracy per classifier on GBSG2
(lifelines) and scikit-learn's breast-cancer table after profiling and --iterate, beside the
baseline and beside SDV's GaussianCopula fitted on the same data.

    .venv/bin/python bench/fabrication.py            # full (several minutes)
    .venv/bin/python bench/fabrication.py --quick    # < 1 minute, reduced sizes
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


def realism(name: str, real, rounds: int, repeats: int) -> dict:
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    from fabrication import iterate, verify
    from fabrication.profiler import sanitize_columns

    real = sanitize_columns(real)
    _, rep, _ = iterate(real, name, rounds=rounds, repeats=repeats)
    md = Metadata.detect_from_dataframes({"table": real})
    syn = GaussianCopulaSynthesizer(md)
    syn.fit({"table": real})
    fake = syn.sample(len(real))
    fake = fake["table"] if isinstance(fake, dict) else fake
    sdv_rep = verify(real, fake, repeats=repeats)
    out = {}
    for clf in rep.accuracy:
        out[f"accuracy_{name}_{clf}"] = round(rep.accuracy[clf], 4)
        out[f"baseline_{name}_{clf}"] = round(rep.baseline[clf], 4)
        out[f"sdv_accuracy_{name}_{clf}"] = round(sdv_rep.accuracy[clf], 4)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: proves the benchmark runs (CI); figures meaningless")
    args = ap.parse_args()
    args.quick = args.quick or args.smoke
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    total = 3_000 if args.smoke else 60_000 if args.quick else 1_000_000
    out: dict = {"quick": args.quick}
    w1 = throughput(total, 1)
    w2 = throughput(total, 2)
    out["rows_per_s_w1"] = round(w1["rows"] / w1["seconds"], 1)
    out["rows_per_s_w2"] = round(w2["rows"] / w2["seconds"], 1)
    out["seconds_1m_rows"] = round(w2["seconds"] * 1_000_000 / w2["rows"], 2)
    out["rule_validity"] = min(w1["validity"], w2["validity"])
    out["rows_total"] = w2["rows"]
    sdv_rows = 500 if args.smoke else 20_000 if args.quick else len(w2["frame"])
    out["sdv_rows_per_s"] = round(sdv_throughput(w2["frame"], sdv_rows), 1)
    from lifelines.datasets import load_gbsg2
    from sklearn.datasets import load_breast_cancer

    rounds, repeats = (1, 1) if args.quick else (6, 2)
    gbsg2 = load_gbsg2()
    out.update(realism("gbsg2", gbsg2.iloc[:250] if args.smoke else gbsg2, rounds, repeats))
    bc = load_breast_cancer(as_frame=True).frame
    if args.quick:
        bc = bc.iloc[:250 if args.smoke else None, [0, 1, 2, 3, 4, 20, 22, 30]]
    out.update(realism("breast_cancer", bc, rounds, repeats))
    out["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
