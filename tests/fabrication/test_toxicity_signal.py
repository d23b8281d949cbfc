"""The fabricated Edinburgh cohort carries a toxicity signal the analytics package can learn.

A grade >= 3 toxicity follows the project's logistic model of the cycle's drug class, performance
status, Charlson comorbidity, age and dose against plan. Read back from a vault as ``serums up``
ingests it, a plain logistic regression on ``analytics.features``' matrix must clearly beat chance,
and its coefficients must point the way the clinical literature does.
"""

from __future__ import annotations

import pytest

from analytics.features import FEATURES, toxicity_dataset
from fabrication import fabricate_edinburgh, records


@pytest.fixture(scope="module")
def toxicity(tmp_path_factory):
    from vault import Vault, VaultConfig

    result = fabricate_edinburgh(500, seed=11)
    assert result.report.rule_validity == 1.0 and result.report.ok
    root = tmp_path_factory.mktemp("toxicity-vault")
    with Vault.open(VaultConfig(database_url=f"sqlite:///{root}/v.db", key_dir=root, scrypt_n=2**10)) as v:
        v.ingest_tables({t: list(records(df)) for t, df in result.frames().items()}, source="test")
        return toxicity_dataset(v, source="edinburgh")


def _model():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def test_logistic_regression_predicts_grade_3_toxicity(toxicity):
    from sklearn.model_selection import cross_val_score

    assert len(toxicity) > 1500 and 0.2 < toxicity.y.mean() < 0.6
    auc = cross_val_score(_model(), toxicity.x, toxicity.y, cv=5, scoring="roc_auc")
    assert auc.mean() >= 0.65, auc


def test_risk_factors_point_the_clinical_way(toxicity):
    coef = dict(zip(FEATURES, _model().fit(toxicity.x, toxicity.y)[-1].coef_[0], strict=True))
    for risk in ("age", "charlson_index", "performance_status"):
        assert coef[risk] > 0.1, (risk, coef)
    x, y = toxicity.x, toxicity.y

    def rate(mask):
        return float(y[mask].mean())

    col = {f: x[:, i] for i, f in enumerate(FEATURES)}
    assert rate(col["performance_status"] >= 2) > rate(col["performance_status"] == 0) + 0.1
    assert rate(col["charlson_index"] >= 2) > rate(col["charlson_index"] == 0) + 0.1
    assert rate(col["age"] >= 70) > rate(col["age"] < 50) + 0.1
    # docetaxel-based regimens are more toxic per cycle than capecitabine or weekly paclitaxel
    assert rate(col["regimen_TC"] == 1) > rate((col["regimen_CAPE"] == 1) | (col["regimen_PAC-W"] == 1)) + 0.1
    # for the same patient and regimen a reduced dose lowers the odds (the dose ratio, which says the
    # same, is left out so that the two do not share the effect)
    keep = [i for i, f in enumerate(FEATURES) if f != "dose_ratio"]
    reduced = _model().fit(x[:, keep], y)[-1].coef_[0][keep.index(FEATURES.index("dose_reduced"))]
    assert reduced < 0, coef
