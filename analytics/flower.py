"""Federated training on Flower's deployment engine: SuperLink, one SuperNode per hospital, ServerApp.

The apps:

- ``client_app`` (ClientApp) runs beside a hospital's vault, in that hospital's SuperNode. Its node
  config names the hospital and a *loader* (``"module:function"``, called with the node config) that
  returns the hospital's ``Dataset``; the rows never leave the process. Each round it trains a
  ``learning.Client`` (DP-SGD with its accountant, or the privacy wall) from the global parameters
  and replies with parameters, its row count and the ε its accountant reports. The accountant's
  history is kept in the node's ``Context.state`` between rounds (each message may run in a fresh
  ClientApp process).
- ``server_app`` (ServerApp) runs FedAvg (weights by row count; ε is the maximum over hospitals)
  and writes the result and per-round progress as JSON to the run config's ``out-dir``. It also
  records what every reply carried (record names, array shapes, metric names) so a test can show
  that only parameters crossed the wire.

``Federation`` starts the engine on loopback (``serums analytics train`` uses it): a SuperLink, one
SuperNode per hospital, writes the Flower App directory and submits the run with ``flwr run``. The
same apps run across machines with the commands ``Federation.commands()`` prints.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EngineUnavailable, InvalidParameters
from .features import Dataset
from .learning import Client, FitResult, TrainConfig, get_parameters, make_model
from .wall import ColumnBounds

# --------------------------------------------------------------------------- run configuration

#: Run-config keys (Flower's kebab-case) and the TrainConfig field each sets.
_RUN_KEYS = {"method": "method", "epsilon": "epsilon", "delta": "delta", "num-server-rounds": "rounds",
             "local-epochs": "local_epochs", "batch-size": "batch_size", "learning-rate": "learning_rate",
             "max-grad-norm": "max_grad_norm", "seed": "seed"}


def run_config(config: TrainConfig, *, out_dir: Path, hospitals: int) -> dict[str, Any]:
    out: dict[str, Any] = {k: getattr(config, f) for k, f in _RUN_KEYS.items()}
    out["epsilon"] = -1.0 if math.isinf(config.epsilon) else float(config.epsilon)  # TOML has no ∞ here
    out.update({"out-dir": str(out_dir), "min-nodes": hospitals})
    return out


def train_config_from(run: Mapping[str, Any]) -> TrainConfig:
    kw = {f: run[k] for k, f in _RUN_KEYS.items() if k in run}
    if float(kw.get("epsilon", -1)) < 0:
        kw["epsilon"] = math.inf
    for name in ("rounds", "local_epochs", "batch_size", "seed"):
        if name in kw:
            kw[name] = int(kw[name])
    for name in ("epsilon", "delta", "learning_rate", "max_grad_norm"):
        if name in kw:
            kw[name] = float(kw[name])
    return TrainConfig(**kw)


def load_site(node_config: Mapping[str, Any]) -> tuple[Dataset, list[ColumnBounds]]:
    """Call the node's loader (``"module:function"``) with the node config."""
    ref = str(node_config.get("loader", ""))
    module, _, name = ref.partition(":")
    if not module or not name:
        raise InvalidParameters(f"node config needs loader = 'module:function', not {ref!r}")
    fn: Callable[[Mapping[str, Any]], tuple[Dataset, list[ColumnBounds]]] = getattr(import_module(module), name)
    return fn(node_config)


# --------------------------------------------------------------------------- the apps


def _fit_at_site(context, arrays: list[np.ndarray]) -> FitResult:
    """Train this node's hospital from the global ``arrays``; the DP accountant's history lives in
    the node's ``Context.state`` between rounds (each round may run in a fresh ClientApp process)."""
    from flwr.app import ConfigRecord

    data, bounds = load_site(context.node_config)
    client = Client(data, bounds, train_config_from(context.run_config),
                    name=str(context.node_config.get("hospital", "site")))
    state = context.state.config_records.get("accountant")
    if client.engine is not None and state is not None and state.get("steps"):
        client.engine.accountant.history = [(float(state["noise"]), float(state["rate"]), int(state["steps"]))]
    result = client.fit({"weight": arrays[0], "bias": arrays[1]})
    if client.engine is not None:
        history = client.engine.accountant.history
        context.state.config_records["accountant"] = ConfigRecord(
            {"noise": float(history[0][0]), "rate": float(history[0][1]), "steps": sum(int(h[2]) for h in history)})
    return result


def _client_train(msg, context):
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

    result = _fit_at_site(context, msg.content["arrays"].to_numpy_ndarrays())
    reply = RecordDict({
        "arrays": ArrayRecord([result.parameters["weight"], result.parameters["bias"]]),
        "metrics": MetricRecord({"num-examples": result.num_examples, "epsilon-spent": result.epsilon_spent,
                                 "fit-seconds": result.seconds}),
    })
    return Message(content=reply, reply_to=msg)


def _server_setup(context) -> tuple[Mapping[str, Any], TrainConfig, Path, int]:
    run = context.run_config
    out = Path(str(run["out-dir"]))
    out.mkdir(parents=True, exist_ok=True)
    return run, train_config_from(run), out, int(run.get("min-nodes", 2))


def _server_main(grid, context) -> None:
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import FedAvg

    run, config, out, nodes = _server_setup(context)
    wire: list[dict[str, Any]] = []
    rounds: list[dict[str, Any]] = []
    started = [time.perf_counter()]

    class _Recording(FedAvg):
        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            for m in replies:
                if m.has_content():
                    wire.append({name: _describe(rec) for name, rec in m.content.items()})
            results = [FitResult({"weight": a[0], "bias": a[1]}, int(m.content["metrics"]["num-examples"]),
                                 float(m.content["metrics"]["epsilon-spent"]))
                       for m in replies if m.has_content()
                       for a in [m.content["arrays"].to_numpy_ndarrays()]]
            arrays, metrics = super().aggregate_train(server_round, replies)
            now = time.perf_counter()
            rounds.append({"round": server_round, "seconds": now - started[0], "hospitals": len(results),
                           "epsilon_spent": max((r.epsilon_spent for r in results), default=0.0)})
            started[0] = now
            (out / "progress.json").write_text(json.dumps(rounds))
            return arrays, metrics

    strategy = _Recording(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=nodes,
                          min_available_nodes=nodes)
    initial = get_parameters(make_model(int(run["features"])))
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord([initial["weight"], initial["bias"]]),
                            num_rounds=config.rounds)
    final = result.arrays.to_numpy_ndarrays()
    doc = {"parameters": {"weight": final[0].tolist(), "bias": final[1].tolist()}, "rounds": rounds,
           "epsilon_spent": max((r["epsilon_spent"] for r in rounds), default=0.0), "wire": wire}
    (out / "result.json").write_text(json.dumps(doc))


def _describe(record) -> dict[str, Any]:
    from flwr.app import ArrayRecord, MetricRecord

    if isinstance(record, ArrayRecord):
        return {"kind": "arrays", "shapes": [list(a.shape) for a in record.to_numpy_ndarrays()]}
    if isinstance(record, MetricRecord):
        return {"kind": "metrics", "keys": sorted(record.keys())}
    return {"kind": type(record).__name__, "keys": sorted(record.keys())}


def _reporting(main: Callable) -> Callable:
    """A ServerApp main that writes its failure to ``out-dir/error.txt`` (``Federation.run`` raises it)."""

    def wrapped(grid, context) -> None:
        try:
            main(grid, context)
        except BaseException as exc:
            import traceback

            out = Path(str(context.run_config["out-dir"]))
            out.mkdir(parents=True, exist_ok=True)
            (out / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            raise

    return wrapped


def _make_apps():
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    c, s = ClientApp(), ServerApp()
    c.train()(_client_train)
    s.main()(_reporting(_server_main))
    return c, s


client_app, server_app = _make_apps()


# --------------------------------------------------------------------------- secure aggregation (SecAgg+)


#: SecAgg+ scales each update by rows / MAX_ROWS before quantising: a hospital's row count should not
#: exceed it (quantisation step ≈ 4e-6 · MAX_ROWS / rows on each parameter).
MAX_ROWS = 10_000


def _secure_client_fn(context):
    """A hospital's client for SecAgg+: the same training, its update masked by ``secaggplus_mod``."""
    from flwr.client import NumPyClient

    class _Hospital(NumPyClient):
        def fit(self, parameters, config):
            result = _fit_at_site(context, parameters)
            return ([result.parameters["weight"], result.parameters["bias"]], result.num_examples,
                    {"epsilon-spent": result.epsilon_spent})

    return _Hospital().to_client()


def _secure_server_main(grid, context) -> None:
    from flwr.common import ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg as LegacyFedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    run, config, out, nodes = _server_setup(context)
    rounds: list[dict[str, Any]] = []
    started = [time.perf_counter()]

    def aggregate(metrics: list[tuple[int, dict]]) -> dict:
        now = time.perf_counter()
        eps = max((float(m.get("epsilon-spent", 0.0)) for _, m in metrics), default=0.0)
        rounds.append({"round": len(rounds) + 1, "seconds": now - started[0], "hospitals": len(metrics),
                       "epsilon_spent": eps})
        started[0] = now
        (out / "progress.json").write_text(json.dumps(rounds))
        return {"epsilon-spent": eps}

    initial = get_parameters(make_model(int(run["features"])))
    strategy = LegacyFedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=nodes,
                            min_available_clients=nodes, min_evaluate_clients=0,
                            initial_parameters=ndarrays_to_parameters([initial["weight"], initial["bias"]]),
                            fit_metrics_aggregation_fn=aggregate)
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=config.rounds), strategy=strategy)
    if nodes < 3:
        raise InvalidParameters("secure aggregation (SecAgg+) needs at least 3 hospitals")
    # each hospital's mask is secret-shared with all; nodes − 1 shares rebuild a dropped one's mask.
    # The server sees only the sum of the (quantised) updates.
    DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(num_shares=nodes, reconstruction_threshold=nodes - 1,
                                                    max_weight=MAX_ROWS, clipping_range=8.0))(grid, legacy)
    final = legacy.state.array_records["parameters"].to_numpy_ndarrays()
    doc = {"parameters": {"weight": final[0].tolist(), "bias": final[1].tolist()}, "rounds": rounds,
           "epsilon_spent": max((r["epsilon_spent"] for r in rounds), default=0.0), "wire": [{"secure": True}]}
    (out / "result.json").write_text(json.dumps(doc))


def _make_secure_apps():
    from flwr.client.mod import secaggplus_mod
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    s = ServerApp()
    s.main()(_reporting(_secure_server_main))
    return ClientApp(client_fn=_secure_client_fn, mods=[secaggplus_mod]), s


secure_client_app, secure_server_app = _make_secure_apps()


# --------------------------------------------------------------------------- the engine on loopback


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


APP_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "serums-toxicity"
version = "1.0.0"
description = "SERUMS: the toxicity predictor trained across hospitals (DP-SGD or the privacy wall)"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "serums"

[tool.flwr.app.components]
serverapp = "serums_federated:{prefix}server_app"
clientapp = "serums_federated:{prefix}client_app"

[tool.flwr.app.config]
{config}
"""


#: The Flower App's module: the apps live in the installed ``analytics`` package.
APP_MODULE = '''"""SERUMS federated toxicity predictor: Flower components from the installed analytics package."""

from analytics.flower import client_app, secure_client_app, secure_server_app, server_app

__all__ = ["client_app", "secure_client_app", "secure_server_app", "server_app"]
'''


def _toml_value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, str | bool) else repr(v) if isinstance(v, float) else str(v)


@dataclass
class Site:
    """One hospital's SuperNode: its name and node config (loader and anything the loader reads)."""

    hospital: str
    node_config: dict[str, Any]


@dataclass
class FederatedRun:
    parameters: dict[str, np.ndarray]
    epsilon_spent: float
    rounds: list[dict[str, Any]]
    wire: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def seconds_per_round(self) -> float:
        return self.seconds / max(1, len(self.rounds))


class Federation:
    """SuperLink + one SuperNode per site on loopback, for one run at a time. Use as a context manager."""

    def __init__(self, work_dir: Path, sites: list[Site], *, env: Mapping[str, str] | None = None,
                 superlink_port: int | None = None, fleet_target: str | None = None):
        if not sites:
            raise InvalidParameters("a federation needs at least one site")
        self.work = Path(work_dir)
        self.sites = sites
        self.port = superlink_port or free_port()
        self.fleet_target = fleet_target  # where SuperNodes connect (a recording proxy in tests)
        self.procs: list[subprocess.Popen] = []
        bindir = str(Path(sys.executable).parent)
        self.env = {**os.environ, **(env or {}), "FLWR_HOME": str(self.work / "flwr-home"),
                    "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}

    # ----------------------------------------------------------------- processes
    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.work / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process' lifetime
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.work,
                                start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def _wait_port(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise EngineUnavailable(f"a Flower process exited early; see the logs in {self.work}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        raise EngineUnavailable(f"Flower did not listen on 127.0.0.1:{port} within {timeout:.0f}s")

    def commands(self) -> list[str]:
        """The equivalent shell commands (one SuperLink, a SuperNode per hospital, the run)."""
        link = f"flower-superlink --insecure --port {self.port} --database {self.work / 'superlink.db'}"
        nodes = [f"flower-supernode --insecure --superlink {self.fleet_target or f'127.0.0.1:{self.port}'} "
                 f"--port <free port> --node-config \"{_node_config_arg(s)}\"" for s in self.sites]
        return [link, *nodes, f"flwr run {self.work / 'app'} serums"]

    def __enter__(self) -> Federation:
        self.work.mkdir(parents=True, exist_ok=True)
        try:
            self._start("superlink", ["flower-superlink", "--insecure", "--port", str(self.port),
                                      "--database", str(self.work / "superlink.db")])
            self._wait_port(self.port)
            for site in self.sites:
                port = free_port()
                self._start(f"supernode-{site.hospital}", [
                    "flower-supernode", "--insecure", "--superlink", self.fleet_target or f"127.0.0.1:{self.port}",
                    "--port", str(port), "--node-config", _node_config_arg(site)])
                self._wait_port(port)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.procs.clear()

    # ----------------------------------------------------------------- one run
    def run(self, config: TrainConfig, *, features: int, timeout: float = 900.0, secure: bool = False,
            on_round: Callable[[dict[str, Any]], None] | None = None) -> FederatedRun:
        """Submit the app with ``flwr run`` and wait for the ServerApp's result. ``secure``: the
        hospitals' updates are aggregated with Flower's SecAgg+ (the server sees only their sum)."""
        out = self.work / f"run-{int(time.time() * 1000)}"
        app = self.work / "app"
        if app.exists():
            shutil.rmtree(app)
        app.mkdir(parents=True)
        cfg = {**run_config(config, out_dir=out, hospitals=len(self.sites)), "features": features}
        (app / "serums_federated.py").write_text(APP_MODULE)
        (app / "pyproject.toml").write_text(APP_PYPROJECT.format(
            prefix="secure_" if secure else "", config="\n".join(f"{k} = {_toml_value(v)}" for k, v in cfg.items())))
        home = Path(self.env["FLWR_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "serums"\n\n[superlink.serums]\naddress = "127.0.0.1:{self.port}"\n'
            "insecure = true\n")
        started = time.perf_counter()
        sub = subprocess.run(["flwr", "run", str(app), "serums", "--format", "json"], env=self.env,
                             cwd=self.work, capture_output=True, text=True, timeout=120)
        answer = _json_tail(sub.stdout)
        if sub.returncode != 0 or not answer.get("success"):
            raise EngineUnavailable(f"flwr run failed: {answer.get('error-message') or sub.stderr.strip()[-500:]}")
        seen = 0
        deadline = time.monotonic() + timeout
        while not (out / "result.json").exists():
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"the federated run did not finish within {timeout:.0f}s "
                                        f"(logs in {self.work})")
            if any(p.poll() is not None for p in self.procs):
                raise EngineUnavailable(f"a Flower process exited during the run; see the logs in {self.work}")
            if (out / "error.txt").exists():
                first = (out / "error.txt").read_text().splitlines()[0]
                raise EngineUnavailable(f"the ServerApp failed: {first} (details in {out / 'error.txt'})")
            progress = _read_json(out / "progress.json") or []
            for entry in progress[seen:]:
                if on_round:
                    on_round(entry)
            seen = max(seen, len(progress))
            time.sleep(0.5)
        doc = _read_json(out / "result.json")
        for entry in doc["rounds"][seen:]:
            if on_round:
                on_round(entry)
        params = {k: np.asarray(v, dtype=np.float32) for k, v in doc["parameters"].items()}
        return FederatedRun(params, float(doc["epsilon_spent"]), doc["rounds"], doc["wire"],
                            time.perf_counter() - started)


def _node_config_arg(site: Site) -> str:
    items = {"hospital": site.hospital, **site.node_config}
    return " ".join(f"{k}={_toml_value(v)}" for k, v in items.items()).replace('"', "'")


def _json_tail(text: str) -> dict[str, Any]:
    start = text.find("{")
    try:
        return json.loads(text[start:]) if start >= 0 else {}
    except ValueError:
        return {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
