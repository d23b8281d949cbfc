"""Streaming mode against the local Mosquitto (127.0.0.1:1883): messages are masked or fabricated
as they arrive and go out until a message count, a time limit or a stop."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid

import pandas as pd
import pytest

import pseudonyms
from fabrication.masking import Fpe
from fabrication.model import compile_project
from fabrication.streaming import stream

KEY = bytes(range(32))
BROKER = "127.0.0.1", 1883
TINY = """
name: tiny
seed: 1
tables:
  people:
    rows: 10
    primary_key: [pid]
    columns:
      pid: {type: string, sequence: {format: "P{:05d}"}}
      sex: {type: categorical, categories: [F, M], distribution: {kind: categorical, weights: {F: 0.7, M: 0.3}}}
      age: {type: int, distribution: {kind: uniform, min: 20, max: 90}}
  visits:
    rows: {per: people, count: 2}
    columns:
      pid: {type: string, references: people.pid}
      n: {type: int, sequence: {per_parent: true}}
"""


@pytest.fixture()
def broker():
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    try:
        client.connect(*BROKER)
    except OSError as exc:
        pytest.skip(f"Mosquitto not reachable at {BROKER[0]}:{BROKER[1]}: {exc}")
    client.loop_start()
    yield client
    client.loop_stop()
    client.disconnect()


def _run(**kwargs) -> tuple[threading.Thread, dict, threading.Event]:
    out: dict = {}
    ready = threading.Event()
    thread = threading.Thread(target=lambda: out.update(report=stream(ready=ready, **kwargs)))
    thread.start()
    assert ready.wait(15), "the stream did not subscribe"
    return thread, out, ready


def test_masks_each_message_mqtt_to_mqtt_until_the_count(broker):
    run = uuid.uuid4().hex[:8]
    received: list[tuple[str, dict]] = []
    done = threading.Event()

    def collect(_c, _u, msg):
        received.append((msg.topic, json.loads(msg.payload)))
        if msg.topic.endswith("/_done"):
            done.set()

    broker.on_message = collect
    broker.subscribe(f"serums-test-out/{run}/#", qos=1)
    rules = {"given_name": {"substitute": "given_names", "sex": "sex"}, "chi": "fpe", "notes": "drop"}
    thread, out, _ = _run(source=f"mqtt://127.0.0.1:1883/serums-test-in/{run}/#",
                          target=f"mqtt://127.0.0.1:1883/serums-test-out/{run}", rules=rules, key=KEY, count=4)
    people = [{"given_name": "Sheila", "sex": "F", "chi": "0101541234", "notes": "x"},
              {"given_name": "Peter", "sex": "M", "chi": "3112609876", "notes": "y"}]
    broker.publish(f"serums-test-in/{run}/patients", json.dumps(people[0]), qos=1).wait_for_publish(5)
    broker.publish(f"serums-test-in/{run}/patients", json.dumps(people[1:]), qos=1).wait_for_publish(5)
    broker.publish(f"serums-test-in/{run}/patients", b"not json", qos=1).wait_for_publish(5)
    broker.publish(f"serums-test-in/{run}/admissions", json.dumps({"chi": "0101541234", "ward": 7}),
                   qos=1).wait_for_publish(5)
    thread.join(30)
    assert not thread.is_alive() and done.wait(10)
    report = out["report"]
    assert report.messages == 4 and report.rows_in == 3 and report.rejected == 1 and "not JSON" in report.first_problem
    assert report.rows_out == {"patients": 2, "admissions": 1} and report.stopped_by.startswith("count")
    rows = [(t.rsplit("/", 1)[-1], r) for t, r in received]
    patients = [r for t, r in rows if t == "patients"]
    assert len(patients) == 2 and all("notes" not in r for r in patients)
    for original, masked in zip(people, patients, strict=True):
        assert masked["given_name"] in pseudonyms.given_names(original["sex"])  # Sheila stays a woman's name
        assert masked["chi"] != original["chi"] and Fpe(KEY, "chi").decrypt(masked["chi"]) == original["chi"]
    (admission,) = [r for t, r in rows if t == "admissions"]
    assert admission["chi"] == patients[0]["chi"] and admission["ward"] == 7  # same key, same CHI: joins survive
    assert dict(rows)["_done"] == {"patients": 2, "admissions": 1}


def test_fabricates_on_request_into_sqlite_until_the_time_limit(broker, tmp_path):
    run = uuid.uuid4().hex[:8]
    db = tmp_path / "stream.sqlite"
    thread, out, _ = _run(source=f"mqtt://127.0.0.1:1883/serums-test-ask/{run}", target=str(db),
                          project=compile_project(TINY), seconds=4, flush_rows=5)
    for ask in ({"rows": 2}, {"rows": 3, "seed": 9}, {"rows": 0}):
        broker.publish(f"serums-test-ask/{run}", json.dumps(ask), qos=1).wait_for_publish(5)
    thread.join(60)
    report = out["report"]
    assert not thread.is_alive() and report.stopped_by.startswith("time") and report.messages == 3
    assert report.rejected == 1 and "rows must be" in report.first_problem
    with sqlite3.connect(db) as conn:
        people = pd.read_sql("select * from people", conn)
        visits = pd.read_sql("select * from visits", conn)
    assert len(people) == 5 and report.rows_out == {"people": 5, "visits": 10} and len(visits) == 10
    assert visits["pid"].isin(people["pid"]).all()


def test_stop_event_and_bad_setup(broker):
    from fabrication import InputError

    stop = threading.Event()
    thread, out, _ = _run(source=f"mqtt://127.0.0.1:1883/serums-test-idle/{uuid.uuid4().hex[:8]}",
                          target="mqtt://127.0.0.1:1883/serums-test-void", rules={"a": "shuffle"}, key=KEY, stop=stop)
    stop.set()
    thread.join(10)
    assert not thread.is_alive() and out["report"].stopped_by == "stop" and out["report"].messages == 0
    with pytest.raises(InputError, match="one of the two"):
        stream("mqtt://127.0.0.1:1883/x", "out.json")
    with pytest.raises(InputError, match="reads an MQTT topic"):
        stream("data.csv", "out.json", rules={"a": "keep"}, key=KEY)
    with pytest.raises(InputError, match="cannot reach the MQTT broker"):
        stream("mqtt://127.0.0.1:1/x", "out.json", rules={"a": "keep"}, key=KEY, count=1)


def test_cli_stream(broker, tmp_path, capsys):
    """The command: a retained request is delivered as soon as the stream subscribes."""
    from serums.cli import main

    topic = f"serums-test-cli/{uuid.uuid4().hex[:8]}"
    project = tmp_path / "tiny.yaml"
    project.write_text(TINY)
    broker.publish(topic, json.dumps({"rows": 3}), qos=1, retain=True).wait_for_publish(5)
    try:
        assert main(["fabricate", "stream", f"mqtt://127.0.0.1:1883/{topic}", "--project", str(project),
                     "--out", str(tmp_path / "out.json"), "--count", "1", "--seconds", "30"]) == 0
    finally:
        broker.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)  # clear the retained message
    assert "1 message(s)" in capsys.readouterr().out
    written = json.loads((tmp_path / "out.json").read_text())
    assert len(written["people"]) == 3 and len(written["visits"]) == 6
    assert main(["fabricate", "stream", f"mqtt://127.0.0.1:1883/{topic}", "--out", "x.json"]) == 2
    assert "--rules masking.yaml | --project P" in capsys.readouterr().err
