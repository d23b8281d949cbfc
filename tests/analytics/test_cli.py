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
