"""Private learning at a hospital and federated averaging across hospitals.

The toxicity predictor is a logistic regression in PyTorch (one linear layer and a sigmoid: the
same model is evaluated under CKKS encryption). Features are scaled to [−1, 1] by their *declared*
bounds (never by statistics of the data, which would leak). At each hospital a ``Client`` trains:

- ``method="none"``: plain SGD (the non-private reference);
- ``method="dpsgd"``: Opacus DP-SGD, ``make_private_with_epsilon`` for the whole job (all rounds ×
  local epochs), the RDP accountant always present: ``epsilon_spent`` is the accountant's ε;
- ``method="wall"``: the privacy wall, input perturbation. The hospital's matrix (features and
  label) is clipped and noised once with the optimal (ε, δ) noise; everything after is
  post-processing, so the rounds spend nothing more.

``federated_average`` combines the clients' parameters weighted by their row counts (post-processing
of private outputs keeps each hospital's guarantee). Only parameters (``dict[str, ndarray]``) and
counts ever leave a ``Client``.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import InvalidParameters
from .features import LABEL, Dataset
from .progress import progress
from .wall import ColumnBounds, PrivacyWall, check_privacy

METHODS = ("none", "dpsgd", "wall")
Parameters = dict[str, np.ndarray]


def scale(x: np.ndarray, bounds: Sequence[ColumnBounds]) -> np.ndarray:
    """Clip to the declared bounds and map each column to [−1, 1] (centred: SGD converges faster)."""
    lo = np.array([b.low for b in bounds])
    hi = np.array([b.high for b in bounds])
    return 2 * (np.clip(x, lo, hi) - lo) / (hi - lo) - 1


def make_model(n_features: int):
    """The toxicity predictor: logistic regression (a linear layer; the sigmoid is in the loss)."""
    import torch

    return torch.nn.Linear(n_features, 1)


def get_parameters(model) -> Parameters:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def set_parameters(model, params: Parameters) -> None:
    import torch

    model.load_state_dict({k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in params.items()})


def predict_proba(params: Parameters, x: np.ndarray) -> np.ndarray:
    """P(label = 1) of scaled rows under a logistic-regression parameter set (plain numpy)."""
    z = x @ np.asarray(params["weight"]).reshape(-1) + float(np.asarray(params["bias"]).reshape(-1)[0])
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class Scores:
    accuracy: float
    auc: float

    def to_dict(self) -> dict[str, float]:
        return {"accuracy": self.accuracy, "auc": self.auc}


def evaluate(params: Parameters, x: np.ndarray, y: np.ndarray) -> Scores:
    from sklearn.metrics import roc_auc_score

    p = predict_proba(params, x)
    acc = float(np.mean((p >= 0.5) == (y >= 0.5)))
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    return Scores(acc, auc)


@dataclass(frozen=True)
class TrainConfig:
    """What every hospital of a job trains with (keyword-only, like Opacus' facade)."""

    method: str = "dpsgd"
    epsilon: float = math.inf
    delta: float = 1e-5
    rounds: int = 3
    local_epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 2.0
    max_grad_norm: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InvalidParameters(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if self.method != "none" and not math.isinf(self.epsilon):
            check_privacy(self.epsilon, self.delta, allow_zero_delta=self.method == "wall")
        if self.method == "dpsgd" and not math.isinf(self.epsilon) and self.delta <= 0:
            raise InvalidParameters("DP-SGD needs delta > 0")
        for name in ("rounds", "local_epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise InvalidParameters(f"{name} must be >= 1")
        if not (self.learning_rate > 0 and self.max_grad_norm > 0):
            raise InvalidParameters("learning_rate and max_grad_norm must be > 0")

    @property
    def private(self) -> bool:
        return self.method != "none" and not math.isinf(self.epsilon)


@dataclass
class FitResult:
    """What a client sends back: parameters, how many rows they summarise, ε spent so far."""

    parameters: Parameters
    num_examples: int
    epsilon_spent: float
    seconds: float = 0.0


class Client:
    """One hospital's trainer. Holds its rows (never sent) and, for DP-SGD, its accountant."""

    def __init__(self, data: Dataset, bounds: Sequence[ColumnBounds], config: TrainConfig, *,
                 name: str = "client", progress: Callable[[str], None] | None = None):
        import torch

        if len(data) < 2:
            raise InvalidParameters(f"{name}: needs at least 2 rows to train, has {len(data)}")
        self.name, self.config, self.bounds = name, config, list(bounds)
        self.progress = progress
        self._generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        x, y = np.asarray(data.x, float), np.asarray(data.y, float)
        self.epsilon_spent = 0.0
        if config.method == "wall" and config.private:
            wall = PrivacyWall([*self.bounds, LABEL], epsilon=config.epsilon, delta=config.delta)
            # each hospital draws its own noise (independent across sites, reproducible per site)
            rng = np.random.default_rng([config.seed, zlib.crc32(name.encode())])
            noisy = wall.apply(np.column_stack([x, y]), rng=rng)
            x, y = noisy[:, :-1], (noisy[:, -1] >= 0.5).astype(float)  # thresholding is post-processing
            self.epsilon_spent = config.epsilon  # one release of the matrix; rounds are post-processing
        self.n = len(y)
        xs = torch.as_tensor(scale(x, self.bounds), dtype=torch.float32)
        ys = torch.as_tensor(y, dtype=torch.float32).reshape(-1, 1)
        dataset = torch.utils.data.TensorDataset(xs, ys)
        self.model = make_model(xs.shape[1])
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.learning_rate)
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=min(config.batch_size, self.n),
                                                  shuffle=True, generator=self._generator)
        self.train_module = self.model
        self.engine = None
        if config.method == "dpsgd" and config.private:
            from opacus import PrivacyEngine

            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Secure RNG turned off")
                self.engine = PrivacyEngine(accountant="rdp")
            self.train_module, self.optimizer, self.loader = self.engine.make_private_with_epsilon(
                module=self.model, optimizer=self.optimizer, data_loader=self.loader,
                target_epsilon=config.epsilon, target_delta=config.delta,
                epochs=config.rounds * config.local_epochs, max_grad_norm=config.max_grad_norm)
            self.noise_multiplier = float(self.optimizer.noise_multiplier)

    def fit(self, params: Parameters | None) -> FitResult:
        """Train ``local_epochs`` from ``params`` (the global model) and return the new parameters."""
        import torch

        started = time.perf_counter()
        if params is not None:
            set_parameters(self.model, params)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        self.train_module.train()
        with warnings.catch_warnings():
            # Opacus' hooks on a first layer whose inputs need no gradient: expected, harmless
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            self._epochs(loss_fn)
        if self.engine is not None:
            with warnings.catch_warnings():  # RDP at large α for small ε: the bound is still valid
                warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
                self.epsilon_spent = float(self.engine.get_epsilon(self.config.delta))
        return FitResult(get_parameters(self.model), self.n, self.epsilon_spent, time.perf_counter() - started)

    def _epochs(self, loss_fn) -> None:
        for _ in range(self.config.local_epochs):
            for xb, yb in self.loader:
                if len(xb) == 0:
                    continue  # Poisson sampling may draw an empty batch
                self.optimizer.zero_grad()
                loss_fn(self.train_module(xb), yb).backward()
                self.optimizer.step()


def federated_average(results: Sequence[FitResult]) -> Parameters:
    """FedAvg: parameters averaged with weights proportional to each client's row count."""
    if not results:
        raise InvalidParameters("federated averaging needs at least one client's result")
    total = sum(r.num_examples for r in results)
    keys = results[0].parameters.keys()
    return {k: sum(np.asarray(r.parameters[k], float) * (r.num_examples / total) for r in results) for k in keys}


@dataclass
class RoundLog:
    round: int
    seconds: float
    epsilon_spent: float
    scores: Scores | None = None


@dataclass
class TrainingResult:
    parameters: Parameters
    epsilon_spent: float
    rounds: list[RoundLog] = field(default_factory=list)

    @property
    def seconds_per_round(self) -> float:
        return float(np.mean([r.seconds for r in self.rounds])) if self.rounds else 0.0


def train_federated(shards: Sequence[Dataset], bounds: Sequence[ColumnBounds], config: TrainConfig, *,
                    test: Dataset | None = None, on_round: Callable[[RoundLog], None] | None = None,
                    ) -> TrainingResult:
    """FedAvg in-process: one ``Client`` per shard (hospital), ``config.rounds`` rounds.

    ``epsilon_spent`` is the largest ε any hospital's accountant reports (each hospital's data is
    protected by its own guarantee; they are disjoint).
    """
    clients = [Client(s, bounds, config, name=s.source or f"hospital{i}") for i, s in enumerate(shards)]
    params: Parameters | None = get_parameters(make_model(len(bounds)))
    log: list[RoundLog] = []
    spent = max(c.epsilon_spent for c in clients)
    for rnd in progress(range(1, config.rounds + 1), description="federated rounds"):
        started = time.perf_counter()
        results = [c.fit(copy.deepcopy(params)) for c in clients]
        params = federated_average(results)
        spent = max(r.epsilon_spent for r in results)
        entry = RoundLog(rnd, time.perf_counter() - started, spent,
                         evaluate(params, scale(test.x, bounds), test.y) if test is not None else None)
        log.append(entry)
        if on_round:
            on_round(entry)
    assert params is not None
    return TrainingResult(params, spent, log)


def train_centralised(data: Dataset, bounds: Sequence[ColumnBounds], config: TrainConfig, *,
                      test: Dataset | None = None) -> TrainingResult:
    """The same training with every row in one place (one client, all rounds × local epochs)."""
    return train_federated([data], bounds, config, test=test)
