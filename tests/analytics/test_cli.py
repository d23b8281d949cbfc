"""``serums analytics`` commands."""

from __future__ import annotations

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
