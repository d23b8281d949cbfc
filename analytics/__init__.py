"""Privacy wall, differentially private learning, FHE analytics, token-gated release, privacy budget.

Public API:

- ``optimal_noise`` / ``gaussian_noise``, ``r_delta`` / ``r_delta_measured`` / ``r_delta_table`` and
  ``PrivacyWall`` (clip to declared column bounds, add the optimal (ε, δ) noise) — ``wall``.
- ``plot_r_delta`` / ``plot_utility`` — PNG figures (matplotlib, Agg).
"""

from .errors import (
    AnalyticsError,
    BudgetExceeded,
    CohortRefused,
    EngineUnavailable,
    InvalidParameters,
    JobNotFound,
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
    "DEFAULT_DELTAS", "AnalyticsError", "BudgetExceeded", "CohortRefused", "ColumnBounds", "EngineUnavailable",
    "InvalidParameters", "JobNotFound", "PrivacyWall", "RDeltaRow", "check_privacy", "gaussian_magnitude",
    "gaussian_noise", "gaussian_sigma", "optimal_magnitude", "optimal_noise", "plot_r_delta", "plot_utility",
    "r_delta", "r_delta_measured", "r_delta_relative_se", "r_delta_table",
]
