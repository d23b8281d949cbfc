"""`serums up` on an empty data directory, then `serums demo` against it, then Ctrl-C: the main job.
The notification service runs under `up`: the tour's reads reach the patient (store and MQTT), and a
killed service is restarted by the supervisor."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.notifications import NotificationStore
from serums.config import Settings
from serums.supervisor import free_port


def _mqtt_listener(topic: str) -> tuple[object | None, list[dict]]:
    """A subscriber to the local Mosquitto (None when it is not reachable), and what it receives."""
    import paho.mqtt.client as mqtt

    got: list[dict] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda _c, _u, msg: got.append({"topic": msg.topic, **json.loads(msg.payload)})
    try:
        sub.connect("127.0.0.1", 1883)
    except OSError:
        return None, got
    subscribed = threading.Event()
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.subscribe(topic, qos=1)
    sub.loop_start()
    subscribed.wait(10)
    return sub, got


def _child_pid(parent: int, needle: str) -> int | None:
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat_file.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == parent and needle in cmdline:
            return int(stat_file.parent.name)
    return None


@pytest.mark.slow
def test_up_demo_and_clean_stop(tmp_path):
    port = free_port()
    env = {**os.environ, "SERUMS_DATA_DIR": str(tmp_path), "SERUMS_MQTT": "127.0.0.1:1883"}
    env.pop("SERUMS_DATABASE_URL", None)
    mqtt_sub, published = _mqtt_listener("serums/+/users/+/notifications/#")
    up = subprocess.Popen(
        [sys.executable, "-m", "serums", "up", "--patients", "60", "--listen", f"127.0.0.1:{port}",
         "--node-listen", f"127.0.0.1:{free_port()}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        out = "".join(lines)
        assert "SERUMS is up" in out, out
        assert "[up 8/8]" in out and "rule validity 100%" in out
        assert "dr.hughes" in out and "auditor.martin" in out
        assert "notifications: following the chain's events; MQTT 127.0.0.1:1883" in out
        demo = subprocess.run([sys.executable, "-m", "serums", "demo"], capture_output=True, text=True, env=env,
                              timeout=180)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "Tour complete." in demo.stdout
        assert "token-presenter-mismatch" in demo.stdout  # the stolen token was refused
        assert "ledger verification: OK" in demo.stdout
        # the tour's doctor read patient.lothian1's record: the notification service under `up` told them
        users = json.loads((tmp_path / "demo-users.json").read_text())["users"]
        patient = next(u["user_id"] for u in users if u["username"] == "patient.lothian1")
        store = NotificationStore(sa.create_engine(Settings.from_env(env).auth_url))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(n.kind == "access" for n in store.list(patient)):
            time.sleep(0.5)
        access = [n for n in store.list(patient) if n.kind == "access"]
        assert access and "dr.hughes" in access[0].text, store.list(patient)
        if mqtt_sub is not None:  # … and published it on the patient's topic
            while time.monotonic() < deadline and not any(m["id"] == access[0].id for m in published):
                time.sleep(0.2)
            mine = [m for m in published if m["topic"] == f"serums/lothian/users/{patient}/notifications/access"]
            assert any(m["id"] == access[0].id and "dr.hughes" in m["text"] for m in mine), published
        # it is supervised: killed, it is restarted
        pid = _child_pid(up.pid, "serums.notifications")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        restarted = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "notifications: restart #1" not in restarted:
            restarted += up.stdout.readline()
        assert "notifications was killed by SIGKILL" in restarted and "notifications: restart #1" in restarted
        assert _child_pid(up.pid, "serums.notifications") not in (None, pid)
        # one owner per data directory: a second `serums up` exits at once, naming the first
        second = subprocess.run([sys.executable, "-m", "serums", "up", "--listen", f"127.0.0.1:{free_port()}"],
                                capture_output=True, text=True, env=env, timeout=60)
        assert second.returncode == 1 and second.stderr.count("\n") == 1, second.stderr
        assert f"in use by serums up (pid {up.pid}, its node pid" in second.stderr
        # everything it created is private: files 0600 in 0700 directories
        loose = [f"{p} {stat.S_IMODE(p.lstat().st_mode):o}" for p in [tmp_path, *tmp_path.rglob("*")]
                 if stat.S_IMODE(p.lstat().st_mode) & ~(0o700 if p.is_dir() else 0o600)]
        assert loose == []
    finally:
        if mqtt_sub is not None:
            mqtt_sub.loop_stop()
            mqtt_sub.disconnect()
        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=60)
    assert up.returncode == 0, rest
    assert "[up] stopped" in rest
    assert not (tmp_path / "up.json").exists()
    totp = subprocess.run([sys.executable, "-m", "serums", "demo", "totp", "dr.hughes"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert totp.returncode == 0 and totp.stdout.strip().isdigit()
    bad = subprocess.run([sys.executable, "-m", "serums", "demo", "totp", "nobody"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert bad.returncode == 1 and "not a demo user" in bad.stderr and "Traceback" not in bad.stderr
