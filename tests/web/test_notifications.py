"""The notification service against the real chain's events: a restart neither loses nor repeats
a notification, people's choice of kinds is respected, and notifications reach MQTT."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import sqlalchemy as sa

from gateway import flow
from gateway.notifications import MqttPublisher, NotificationService, NotificationStore

from .conftest import actor_of


def read_once(site, gp_actor) -> str:
    """The GP requests and reads the patient's diagnoses: one AccessLogged event. Returns the grant id."""
    svc = site.world.services
    d = flow.request_access(svc, gp_actor, site.people.patient.user_id, "lothian", sections=["conditions"],
                            purpose="treatment", justification="direct-care")
    flow.fetch_record(svc, gp_actor, d["token"]["token"])
    return d["grant_id"]


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture
def own_store(tmp_path):
    store = NotificationStore(sa.create_engine(f"sqlite:///{tmp_path / 'notes.db'}"))
    store.create_tables()
    return store


def access_refs(store, user_id) -> list[str]:
    return [n.ref for n in store.list(user_id, 10_000) if n.kind == "access"]


def test_a_restart_neither_loses_nor_repeats_a_notification(site, own_store):
    svc = site.world.services
    patient = site.people.patient.user_id
    gp = actor_of(svc, site.people.gp)
    first = NotificationService(svc, own_store, retry_seconds=0.2).start()
    try:
        g1 = read_once(site, gp)
        wait_for(lambda: g1 in access_refs(own_store, patient))
    finally:
        first.stop()
    # while the service is down, two more reads
    g2, g3 = read_once(site, gp), read_once(site, gp)
    checkpoint = own_store.checkpoint()
    second = NotificationService(svc, own_store, retry_seconds=0.2).start()
    try:
        wait_for(lambda: {g2, g3} <= set(access_refs(own_store, patient)))
        g4 = read_once(site, gp)
        wait_for(lambda: g4 in access_refs(own_store, patient))
    finally:
        second.stop()
    refs = access_refs(own_store, patient)
    for g in (g1, g2, g3, g4):
        assert refs.count(g) == 1, (g, refs)
    assert own_store.checkpoint() != checkpoint
    # handling an event again (a replay) stores nothing new
    net = svc.service_gateway().network(svc.network.channel)
    with net.chaincode_events("serums", start_block=0) as stream:
        event = next(e for e in stream if e.event_name == "AccessLogged" and json.loads(e.payload)["grant_id"] == g1)
    assert NotificationService(svc, own_store).handle(event) == []


def test_people_choose_the_kinds_they_receive(site, own_store):
    svc = site.world.services
    patient = site.people.patient.user_id
    own_store.set_kinds(patient, ["break-glass", "refusal"])
    assert own_store.kinds(patient)["access"] is False
    service = NotificationService(svc, own_store, retry_seconds=0.2).start()
    try:
        before = own_store.checkpoint()
        read_once(site, actor_of(svc, site.people.gp))
        wait_for(lambda: own_store.checkpoint() not in (None, before) and service.handled > 0)
        time.sleep(0.5)
    finally:
        service.stop()
    assert access_refs(own_store, patient) == []
    with pytest.raises(Exception, match="no notification kind"):
        own_store.set_kinds(patient, ["everything"])


def test_notifications_are_published_to_mqtt(site, own_store):
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
    except OSError:
        pytest.skip("no MQTT broker on 127.0.0.1:1883 (Mosquitto)")
    import paho.mqtt.client as mqtt

    svc = site.world.services
    patient = site.people.patient.user_id
    got: list[dict] = []
    subscribed = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_connect = lambda c, *_: c.subscribe(f"serums/lothian/users/{patient}/notifications/#", qos=1)
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.on_message = lambda _c, _u, msg: got.append({"topic": msg.topic, **json.loads(msg.payload)})
    sub.connect("127.0.0.1", 1883)
    sub.loop_start()
    service = None
    try:
        assert subscribed.wait(10)
        service = NotificationService(svc, own_store, MqttPublisher(), retry_seconds=0.2).start()
        grant = read_once(site, actor_of(svc, site.people.gp))
        wait_for(lambda: any(m.get("ref") == grant for m in got))
    finally:
        if service is not None:
            service.stop()
        sub.loop_stop()
        sub.disconnect()
    msg = next(m for m in got if m["ref"] == grant)
    assert msg["topic"] == f"serums/lothian/users/{patient}/notifications/access" and msg["kind"] == "access"
    assert site.people.gp.username in msg["text"]


def test_the_service_process_resumes_after_a_restart_without_loss_or_repeat(site, tmp_path):
    """``python -m serums.notifications`` as its own process (its own database here, so that it does
    not share the test site's checkpoint): stopped with SIGTERM, events happen, started again —
    every access is notified exactly once."""
    import os
    import signal
    import subprocess
    import sys

    svc = site.world.services
    db = tmp_path / "notes.db"
    env = {**os.environ, "SERUMS_DATA_DIR": str(svc.settings.data_dir), "SERUMS_NODE_ADDRESS": svc.address,
           "SERUMS_AUTH_DATABASE_URL": f"sqlite:///{db}"}
    env.pop("SERUMS_DATABASE_URL", None)
    store = NotificationStore(sa.create_engine(f"sqlite:///{db}"))
    patient = site.people.patient.user_id
    gp = actor_of(svc, site.people.gp)

    def start():
        return subprocess.Popen([sys.executable, "-m", "serums.notifications", "--mqtt", "-"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    proc = start()
    try:
        wait_for(lambda: db.exists() and _has_tables(store), timeout=60)
        g1 = read_once(site, gp)
        wait_for(lambda: g1 in access_refs(store, patient), timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out[-2000:]
    g2 = read_once(site, gp)  # while it is down
    proc = start()
    try:
        wait_for(lambda: g2 in access_refs(store, patient), timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    refs = access_refs(store, patient)
    assert refs.count(g1) == 1 and refs.count(g2) == 1, refs


def _has_tables(store) -> bool:
    try:
        store.checkpoint()
        return True
    except sa.exc.OperationalError:
        return False
