"""Every benchmark runs: each ``bench/*.py`` script, run as the README says with ``--smoke`` (tiny
sizes), exits 0 without a traceback and prints one JSON object on stdout with its figure names and
``"quick"`` (``bench/chaincode.py`` once crashed at import and nothing noticed).

Scripts are discovered (a new benchmark is covered the day it lands); helper modules such as
``proctime.py`` (no ``__main__`` block) are not run. ``FIGURES`` names the figures each known
script must print; a script not in the table must still print one JSON object of numbers with
``"quick"``. The figures' values are not judged here: smoke sizes measure nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"

FIGURES: dict[str, set[str]] = {
    "analytics": {"dp_accuracy_eps1", "nonprivate_accuracy", "wall_accuracy_eps1", "fl_seconds_per_round",
                  "fhe_predict_ms", "fhe_predictions_per_s_batched", "fhe_stats_100k_s", "fhe_accuracy_gap",
                  "r_delta_max_rel_error"},
    "auth": {"login_p50_ms", "login_p99_ms", "text_login_p50_ms", "graphical_login_p50_ms", "argon2_hash_ms"},
    "chaincode": {"request_access_tx_per_s_c32", "plain_tx_per_s_c32", "ratio_to_plain", "p99_ms_c8"},
    "fabrication": {"rows_per_s_w1", "rows_per_s_w2", "seconds_1m_rows", "rule_validity", "max_margin_all_tables"},
    "flow": {"flows_per_s_c1", "flows_per_s_c16", "p99_ms_c16", "cpu_ceiling_flows_per_s"},
    "ledger": {"committed_tx_per_s_c1", "committed_tx_per_s_c32", "p99_ms_c32", "evaluate_q_per_s",
               "ledger_verified", "cpu_ceiling_tx_per_s"},
    "vault": {"ingest_rows_per_s_sqlite", "encryption_overhead_ratio", "record_read_p99_ms"},
}


def scripts() -> list[str]:
    return sorted(p.stem for p in BENCH.glob("*.py")
                  if not p.name.startswith("_") and 'if __name__ == "__main__"' in p.read_text())


def test_discovery_finds_the_known_benchmarks_and_skips_helpers():
    found = scripts()
    assert set(FIGURES) <= set(found) and "proctime" not in found


@pytest.mark.parametrize("name", scripts())
def test_benchmark_smoke_run_prints_its_figures(name: str, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERUMS_")}
    env.update(SERUMS_DATA_DIR=str(tmp_path / "data"), TMPDIR=str(tmp_path))
    run = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--smoke"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    assert lines, f"bench/{name}.py printed nothing on stdout"
    objects = [line for line in lines if line.lstrip().startswith("{")]
    assert len(objects) == 1, f"one JSON object expected on stdout, got: {run.stdout[-2000:]}"
    figures = json.loads(objects[0])
    assert isinstance(figures, dict) and figures.get("quick") is True
    missing = FIGURES.get(name, set()) - set(figures)
    assert not missing, f"bench/{name}.py lacks {sorted(missing)}"
    for key, value in figures.items():
        assert value is None or isinstance(value, bool | int | float | str), (key, value)
