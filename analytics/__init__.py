"""Privacy wall, differentially private learning, FHE analytics, token-gated release, privacy budget.

Public API:

- ``optimal_noise`` / ``gaussian_noise``, ``r_delta`` / ``r_delta_measured`` / ``r_delta_table`` and
  ``PrivacyWall`` (clip to declared column bounds, add the optimal (ε, δ) noise) — ``wall``.
- ``plot_r_delta`` / ``plot_utility`` — PNG figures (matplotlib, Agg).
- ``toxicity_dataset(vault)`` / ``breast_cancer_dataset()`` and ``TOXICITY_BOUNDS`` — ``features``.
- ``TrainConfig``, ``Client`` (one hospital: DP-SGD with Opacus, or the privacy wall),
  ``federated_average``, ``train_federated`` / ``train_centralised``, ``evaluate`` — ``learning``.
- ``analytics.flower``: the Flower ClientApp/ServerApp and ``Federation`` (SuperLink + SuperNodes on loopback).
- ``analytics.jobs`` / ``analytics.chain``: jobs gated by a research cohort, budgets checked before
  training, each hospital read only through its vault's cohort token (``CohortSite``), FedAvg here
  or on Flower's deployment engine (``JobSpec.engine``), the release spending and logging its
  SHA-256 on chain (``BudgetContract.SpendRelease``).
- ``analytics.progress``: progress bars on federated rounds and long encryption.
- ``analytics.fhe``: TenSEAL CKKS study keys, encrypted cross-hospital statistics, encrypted inference.
"""

from .errors import (
    AnalyticsError,
    BudgetExceeded,
    CohortRefused,
    EngineUnavailable,
    InvalidParameters,
    JobNotFound,
)
from .features import (
    FEATURES,
    TOXICITY_BOUNDS,
    TOXICITY_SECTIONS,
    Dataset,
    breast_cancer_dataset,
    toxicity_dataset,
)
from .learning import (
    Client,
    FitResult,
    Parameters,
    Scores,
    TrainConfig,
    TrainingResult,
    evaluate,
    federated_average,
    scale,
    train_centralised,
    train_federated,
)
from .plots import plot_r_delta, plot_utility
from .wall import (
    DEFAULT_DELTAS,
    ColumnBounds,
    PrivacyWall,
    RDeltaRow,
    check_privacy,
    gaussian_magnitude,
    gaussian_noise,
    gaussian_sigma,
    optimal_magnitude,
    optimal_noise,
    r_delta,
    r_delta_measured,
    r_delta_relative_se,
    r_delta_table,
)

__all__ = [
    "FEATURES", "TOXICITY_BOUNDS", "TOXICITY_SECTIONS", "Client", "Dataset", "FitResult", "Parameters", "Scores",
    "TrainConfig", "TrainingResult", "breast_cancer_dataset", "evaluate", "federated_average", "scale",
    "toxicity_dataset", "train_centralised", "train_federated",
    "DEFAULT_DELTAS", "AnalyticsError", "BudgetExceeded", "CohortRefused", "ColumnBounds", "EngineUnavailable",
    "InvalidParameters", "JobNotFound", "PrivacyWall", "RDeltaRow", "check_privacy", "gaussian_magnitude",
    "gaussian_noise", "gaussian_sigma", "optimal_magnitude", "optimal_noise", "plot_r_delta", "plot_utility",
    "r_delta", "r_delta_measured", "r_delta_relative_se", "r_delta_table",
]
