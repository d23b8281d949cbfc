"""Loaders the test SuperNodes call (node config ``loader = "tests.analytics.flower_sites:..."``)."""

from __future__ import annotations

from analytics.features import breast_cancer_dataset


def breast_cancer_shard(node_config):
    """Shard ``shard`` of ``shards`` of the breast-cancer training split."""
    data, bounds = breast_cancer_dataset()
    train, _ = data.split(0.2, seed=0)
    return train.shard(int(node_config["shards"]), seed=1)[int(node_config["shard"])], list(bounds)
