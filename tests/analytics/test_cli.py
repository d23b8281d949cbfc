"""``serums analytics`` commands."""

from __future__ import annotations

import pytest

from serums.cli import main


def test_noise_report_prints_table_and_draws_png(tmp_path, capsys):
    out = tmp_path / "r.png"
    rc = main(["--data-dir", str(tmp_path), "analytics", "noise-report", "--samples", "200000",
               "--delta", "1e-5", "--delta", "0.5", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "R analytic" in text and "3.8656" in text  # R(1e-5)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_noise_report_bad_delta_is_one_line(tmp_path, capsys):
    rc = main(["--data-dir", str(tmp_path), "analytics", "noise-report", "--delta", "1.5"])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("serums: delta must satisfy") and "Traceback" not in err


def _data_dir_with_vaults(tmp_path, edinburgh):
    """A data dir laid out as ``serums up`` lays it: one vault per hospital under vaults/."""
    import vault
    from serums.commands.up import _split_by_hospital
    from serums.config import Settings

    frames, _ = edinburgh
    settings = Settings.from_env({}, data_dir=tmp_path)
    for hospital, tables in _split_by_hospital(frames).items():
        with vault.open_vault(settings, hospital) as v:
            v.ingest_tables(tables, source="test")
    return settings


def test_site_loader_reads_the_hospitals_vault(tmp_path, edinburgh):
    from analytics import FEATURES
    from serums.commands.analytics import site_dataset

    settings = _data_dir_with_vaults(tmp_path, edinburgh)
    data, bounds = site_dataset({"data-dir": str(settings.data_dir), "hospital": "lothian"})
    assert len(data) > 10 and data.x.shape[1] == len(FEATURES) == len(bounds)


def test_train_inprocess_writes_the_model(tmp_path, edinburgh, capsys):
    import json

    _data_dir_with_vaults(tmp_path, edinburgh)
    rc = main(["--data-dir", str(tmp_path), "analytics", "train", "--engine", "inprocess", "--rounds", "2",
               "--local-epochs", "1", "--epsilon", "2"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "round 2: 3 hospitals" in out
    model = json.loads((tmp_path / "analytics" / "toxicity-model.json").read_text())
    assert 0 < model["epsilon_spent"] <= 2.0 + 1e-6 and len(model["weight"]) == len(model["features"])


def test_train_refuses_bad_input_in_one_line(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path), "analytics", "train", "--epsilon", "-1"]) == 1
    assert capsys.readouterr().err.startswith("serums: epsilon must be")
    assert main(["--data-dir", str(tmp_path), "analytics", "train", "--engine", "inprocess"]) == 1
    assert "no hospital vaults" in capsys.readouterr().err


# --------------------------------------------------------------------------- research jobs from the CLI


@pytest.fixture(scope="module")
def research_dir(tmp_path_factory):
    """A data directory as ``serums up`` leaves it (node running, vaults filled, patients on chain,
    six of eight consenting to research, a researcher), with the auth secrets the CLI reads."""
    from gateway.services import GatewaySettings, Services
    from network.node import EmbeddedNode
    from serums.config import Settings
    from tests.gateway.stack import init_data_dir
    from tests.gateway.test_analytics_api import research_world

    data_dir = tmp_path_factory.mktemp("analytics-cli")
    node = EmbeddedNode(init_data_dir(data_dir))
    address = node.start("127.0.0.1:0")
    services = Services.open(GatewaySettings(data_dir, node_address=address),
                             auth_config=Settings.from_env({}, data_dir=data_dir).auth_config())
    try:
        yield data_dir, address, research_world(services)
    finally:
        services.close()
        node.stop()


@pytest.fixture
def cli(research_dir, monkeypatch, capsys):
    data_dir, address, _ = research_dir
    monkeypatch.setenv("SERUMS_NODE_ADDRESS", address)

    def run(*argv):
        rc = main(["--data-dir", str(data_dir), "analytics", *argv])
        out = capsys.readouterr()
        return rc, out.out, out.err

    return run


def test_datasets_cohort_and_a_job_from_submit_to_release(cli, research_dir, tmp_path):
    import hashlib
    import json

    from analytics.jobs import canonical

    _, _, world = research_dir
    rc, out, err = cli("datasets", "create", "ds-cli", "--hospital", "lothian", "--epsilon", "1.5", "--delta", "1e-4")
    assert rc == 0, err
    assert json.loads(out)["dataset"] == "ds-cli"
    key = tmp_path / "key"
    key.write_text(world.researcher.key)
    rc, out, err = cli("cohort", "request", "--user", world.researcher.username, "--key-file", str(key))
    assert rc == 0, err
    cohort = json.loads(out)
    assert cohort["size"] == len(world.consenting) and cohort["excluded"] == len(world.refs) - len(world.consenting)
    rc, out, err = cli("jobs", "submit", "--cohort", cohort["cohort_id"], "--dataset", "ds-cli", "--epsilon", "1",
                       "--method", "wall", "--rounds", "2", "--local-epochs", "1")
    assert rc == 0, err
    job_id = out.split(":")[0]
    assert f"{job_id} released" in out
    rc, out, _ = cli("jobs", "list")
    assert rc == 0 and job_id in out and "released" in out
    rc, out, _ = cli("jobs", "show", job_id)
    assert rc == 0 and json.loads(out)["round"] == 2
    rc, out, _ = cli("jobs", "release", job_id, "--out", str(tmp_path / "rel.json"))
    release = json.loads((tmp_path / "rel.json").read_text())
    assert rc == 0 and release["sha256"] == hashlib.sha256(canonical(release["document"])).hexdigest()
    rc, out, _ = cli("datasets", "spends", "ds-cli")
    assert rc == 0 and [s["sha256"] for s in json.loads(out)] == [release["sha256"]]
    rc, out, _ = cli("datasets", "show", "ds-cli")
    assert rc == 0 and json.loads(out)["epsilon_remaining"] == "0.5"
    # the budget is enforced before anything runs: one line, nothing spent
    rc, out, err = cli("jobs", "submit", "--cohort", cohort["cohort_id"], "--dataset", "ds-cli", "--epsilon", "1",
                       "--method", "wall")
    assert rc == 1 and err.startswith("serums: ") and "ε=0.5" in err and err.count("\n") == 1
    rc, out, _ = cli("datasets", "list", "--hospital", "lothian")
    assert rc == 0 and "ds-cli" in out and "1 spends" in out


def test_research_commands_refuse_in_one_line(cli, tmp_path, capsys):
    for argv, fragment in [(("jobs", "show", "job-0000000000000000"), "no job"),
                           (("jobs", "release", "nope"), "no job"),
                           (("cohort", "show", "no-such-cohort", "--hospital", "lothian"), "no cohort"),
                           (("cohort", "request", "--user", "nobody", "--key-file", __file__), "not a researcher"),
                           (("datasets", "show", "ds-missing"), "ds-missing"),
                           (("datasets", "create", "ds-x", "--hospital", "atlantis", "--epsilon", "1", "--delta",
                             "0"), "atlantis"),
                           (("jobs", "submit", "--cohort", "c1", "--dataset", "d1", "--epsilon", "-1"), "epsilon")]:
        rc, _, err = cli(*argv)
        assert rc == 1 and err.startswith("serums: ") and fragment in err and err.count("\n") == 1, (argv, err)
    assert main(["--data-dir", str(tmp_path), "analytics", "datasets", "show", "x"]) == 1
    assert "serums up" in capsys.readouterr().err  # no network, or no node running: one line


@pytest.mark.slow
def test_a_job_on_flowers_deployment_engine(cli, research_dir, tmp_path):
    import json

    world = research_dir[2]
    (tmp_path / "key").write_text(world.researcher.key)
    cli("datasets", "create", "ds-flower", "--hospital", "lothian", "--epsilon", "2", "--delta", "1e-4")
    rc, out, err = cli("cohort", "request", "--user", world.researcher.username, "--key-file", str(tmp_path / "key"))
    cohort = json.loads(out)["cohort_id"]
    rc, out, err = cli("jobs", "submit", "--cohort", cohort, "--dataset", "ds-flower", "--epsilon", "1",
                       "--rounds", "2", "--local-epochs", "1", "--engine", "flower")
    assert rc == 0, err
    job_id = out.split(":")[0]
    rc, out, _ = cli("jobs", "release", job_id)
    doc = json.loads(out)["document"]
    assert doc["engine"] == "flower" and doc["rounds"] == 2 and 0 < doc["epsilon_accountant"] <= 1.0


@pytest.mark.slow
def test_a_flower_job_stops_when_its_cohort_is_revoked(research_dir, monkeypatch, tmp_path):
    """The same chain gating on Flower's engine: revoked after round 1, the job stops, spends nothing."""
    import dataclasses

    from analytics import CohortRefused
    from analytics.jobs import JobSpec, run_job
    from gateway import ledger as L
    from gateway import research as R
    from serums.commands.analytics import _Service, flower_node_config
    from serums.config import Settings

    data_dir, address, world = research_dir
    monkeypatch.setenv("SERUMS_NODE_ADDRESS", address)
    services = world.services
    signer = services.auth.open_wallet_with_key(world.researcher.username, world.researcher.key)
    researcher = _Service(world.researcher.user_id, "researcher",
                          lambda c: services.user_contract(world.researcher.user_id, signer, c))
    cid = R.request_cohort(services, researcher, sorted(world.refs))["cohort_id"]
    L.submit(services.admin_contract("lothian", "BudgetContract"), "CreateDataset", "ds-revoked", 2.0, 1e-4)
    ledger = R.analytics_ledger(services, "lothian")
    node = flower_node_config(Settings.from_env(data_dir=str(data_dir)))
    sites = {h: dataclasses.replace(s, node_config=node) for h, s in R.sites(services).items()}
    rounds = []

    def revoke_after_first(entry):
        rounds.append(entry.round)
        if entry.round == 1:
            L.submit(researcher.contract(services, "TransportContract"), "RevokeCohort", cid, "relinquished")

    spec = JobSpec(study="s", cohort_id=cid, dataset="ds-revoked", epsilon=1.0, delta=1e-5, rounds=3,
                   local_epochs=1, engine="flower")
    with pytest.raises(CohortRefused) as e:
        run_job(spec, ledger, sites, on_round=revoke_after_first, work_dir=tmp_path / "flower")
    assert e.value.extra["reason"] == "revoked" and rounds[0] == 1 and 3 not in rounds
    assert ledger.budget("ds-revoked")["spends"] == 0
