"""Private training at a hospital (Opacus DP-SGD, the privacy wall) and federated averaging."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics import InvalidParameters
from analytics.features import breast_cancer_dataset
from analytics.learning import (
    Client,
    FitResult,
    TrainConfig,
    evaluate,
    federated_average,
    scale,
    train_centralised,
    train_federated,
)


@pytest.fixture(scope="module")
def breast():
    data, bounds = breast_cancer_dataset()
    train, test = data.split(0.2, seed=0)
    return train, test, bounds


def test_nonprivate_federated_learns(breast):
    train, test, bounds = breast
    cfg = TrainConfig(method="none", rounds=4, local_epochs=2)
    result = train_federated(train.shard(3, seed=1), bounds, cfg, test=test)
    scores = evaluate(result.parameters, scale(test.x, bounds), test.y)
    assert scores.accuracy > 0.88 and scores.auc > 0.95
    assert result.epsilon_spent == 0 and len(result.rounds) == 4


def test_dpsgd_accountant_meets_the_target_epsilon(breast):
    train, test, bounds = breast
    cfg = TrainConfig(method="dpsgd", epsilon=1.0, delta=1e-5, rounds=3, local_epochs=1)
    spent = []
    result = train_federated(train.shard(2, seed=1), bounds, cfg, test=test, on_round=lambda r: spent.append(r.epsilon_spent))
    # the accountant's ε grows each round and ends at (not above) the target
    assert spent == sorted(spent) and spent[0] < spent[-1]
    assert 0.8 < result.epsilon_spent <= 1.0 + 1e-6
    assert evaluate(result.parameters, scale(test.x, bounds), test.y).accuracy > 0.6


def test_dpsgd_adds_noise(breast):
    train, _, bounds = breast
    cfg = TrainConfig(method="dpsgd", epsilon=0.5, delta=1e-5, rounds=1, local_epochs=1)
    client = Client(train, bounds, cfg)
    assert client.noise_multiplier > 0.5
    a = client.fit(None)
    b = Client(train, bounds, TrainConfig(method="dpsgd", epsilon=0.5, delta=1e-5, rounds=1, local_epochs=1,
                                          seed=1)).fit(None)
    assert not np.allclose(a.parameters["weight"], b.parameters["weight"])


def test_wall_spends_once_and_hides_the_rows(breast):
    train, test, bounds = breast
    cfg = TrainConfig(method="wall", epsilon=2.0, delta=1e-5, rounds=3, local_epochs=1)
    result = train_centralised(train, bounds, cfg, test=test)
    assert result.epsilon_spent == 2.0
    assert [r.epsilon_spent for r in result.rounds] == [2.0, 2.0, 2.0]
    # at a huge ε the wall's noise is small and the model is as good as a non-private one
    loose = train_centralised(train, bounds, TrainConfig(method="wall", epsilon=1e4, rounds=3, local_epochs=2))
    assert evaluate(loose.parameters, scale(test.x, bounds), test.y).accuracy > 0.85


def test_a_fit_result_carries_parameters_only(breast):
    train, _, bounds = breast
    res = Client(train, bounds, TrainConfig(method="none", rounds=1, local_epochs=1)).fit(None)
    assert set(res.parameters) == {"weight", "bias"}
    assert res.parameters["weight"].shape == (1, 30) and res.num_examples == len(train)


def test_federated_average_weights_by_rows():
    a = FitResult({"w": np.array([0.0, 2.0])}, 1, 0.0)
    b = FitResult({"w": np.array([3.0, 2.0])}, 2, 0.0)
    assert federated_average([a, b])["w"].tolist() == [2.0, 2.0]
    with pytest.raises(InvalidParameters):
        federated_average([])


@pytest.mark.parametrize("kw", [dict(method="sgd"), dict(method="dpsgd", epsilon=-1.0), dict(rounds=0),
                                dict(method="dpsgd", epsilon=1.0, delta=0.0), dict(learning_rate=0.0)])
def test_bad_configs_are_refused(kw):
    with pytest.raises(InvalidParameters):
        TrainConfig(**kw)


def test_infinite_epsilon_is_nonprivate():
    assert not TrainConfig(method="dpsgd", epsilon=math.inf).private
