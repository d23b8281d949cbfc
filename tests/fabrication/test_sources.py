"""Data resources: XML in and out, databases by SQLAlchemy URL as input (SQLite, PostgreSQL), clear
errors for databases whose driver is missing, MQTT as an input."""

from __future__ import annotations

import json
import threading
import time
import uuid

import numpy as np
import pandas as pd
import pytest

from fabrication import InputError, OutputError, open_target, profile, read_table


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    n = 120
    return pd.DataFrame({"age": rng.integers(30, 90, n), "sex": rng.choice(["F", "M"], n),
                         "dose": np.round(rng.normal(50, 5, n), 1),
                         "note": np.where(rng.random(n) < 0.2, None, "ok")})


def test_xml_out_and_in(real, tmp_path):
    written = open_target(str(tmp_path / "patients.xml")).write({"patients": real})
    assert "patients.xml" in written
    back = read_table(str(tmp_path / "patients.xml"))
    assert list(back.columns) == list(real.columns) and len(back) == len(real)
    assert back["note"].isna().sum() == real["note"].isna().sum()
    assert np.allclose(back["dose"], real["dose"])
    open_target(str(tmp_path / "many"), fmt="xml").write({"a": real.head(3), "b": real.head(4)})
    assert len(read_table(str(tmp_path / "many" / "b.xml"))) == 4
    assert profile(back, name="from_xml")["tables"]["from_xml"]["rows"] == len(real)


def test_sqlite_input_names_the_table(real, tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    open_target(url).write({"patients": real, "visits": real.head(5)})
    assert len(read_table(url, "patients")) == len(real)
    with pytest.raises(InputError, match="holds 2 tables; name one with --table"):
        read_table(url)
    with pytest.raises(InputError, match="no table 'nope'"):
        read_table(str(tmp_path / "h.db"), "nope")


@pytest.mark.postgres
def test_postgres_input(real, postgres_url):
    import sqlalchemy as sa

    schema = f"fab_in_{uuid.uuid4().hex[:8]}"
    table = f"patients_{uuid.uuid4().hex[:6]}"
    engine = sa.create_engine(postgres_url)
    try:
        real.to_sql(table, engine, index=False)
        back = read_table(postgres_url, table)
        assert len(back) == len(real) and set(back.columns) == set(real.columns)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'drop table if exists "{table}"'))
            conn.execute(sa.text(f'drop schema if exists "{schema}" cascade'))
        engine.dispose()


@pytest.mark.parametrize("url, package", [("oracle+oracledb://u:p@127.0.0.1:1521/xe", "oracledb"),
                                          ("db2+ibm_db://u:p@127.0.0.1:50000/db", "ibm_db_sa")])
def test_database_without_driver_is_a_clear_error(url, package, tmp_path, monkeypatch):
    import importlib.util

    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match=package):
        open_target(url)
    with pytest.raises(InputError, match=package):
        read_table(url, "patients")
    assert not list(tmp_path.iterdir())  # nothing written: no directory named after the URL


def test_mqtt_input_from_mosquitto():
    import paho.mqtt.client as mqtt

    topic = f"serums-test-in/{uuid.uuid4().hex[:8]}"
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    try:
        pub.connect("127.0.0.1", 1883)
    except OSError as exc:
        pytest.skip(f"Mosquitto not reachable at 127.0.0.1:1883: {exc}")
    pub.loop_start()
    out: dict = {}
    reader = threading.Thread(target=lambda: out.update(df=read_table(f"mqtt://127.0.0.1:1883/{topic}?count=40&timeout=10")))
    reader.start()
    time.sleep(0.5)
    try:
        for i in range(40):
            pub.publish(topic, json.dumps({"i": i, "age": 40 + i % 30}), qos=1).wait_for_publish(5)
        reader.join(20)
    finally:
        pub.loop_stop()
        pub.disconnect()
    assert len(out["df"]) == 40 and sorted(out["df"]["i"]) == list(range(40))
    with pytest.raises(InputError, match="no message"):
        read_table(f"mqtt://127.0.0.1:1883/{topic}-silent?timeout=0.5")
