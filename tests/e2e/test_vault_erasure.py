"""A GDPR erasure through the operator's command reaches the vault the running system serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import vault
from serums.config import Settings
from tests.gateway.stack import enrol

from .conftest import ROOT, Stack


def _serums(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SERUMS_DATA_DIR": str(stack.data_dir)}
    for var in ("SERUMS_DATABASE_URL", "SERUMS_AUTH_DATABASE_URL", "SERUMS_KEY_PASSPHRASE", "SERUMS_IPFS_API"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "serums", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def test_cli_erasure_is_the_gateways_patient(stack: Stack):
    svc, http = stack.services, stack.http
    spec = enrol(svc, "lothian", "specialist")
    _, ref = stack.world.patient_ref("lothian", 2)
    enrol(svc, "lothian", "patient", user_id=ref, treating=(spec.user_id,))
    token = http.login(spec)
    body = {"patient_id": ref, "sections": ["*"], "purpose": "treatment"}
    first = http.post("/doctors/requests", token=token, json=body)
    second = http.post("/doctors/requests", token=token, json=body)
    assert first.status == second.status == 201, (first, second)
    released = http.post("/doctors/records", token=token, json={"token": first.json["token"]["token"]})
    assert released.status == 200 and released.json["record"]["sections"]["oncology.treatment"]["entries"]

    # more than one hospital: the command will not guess whose vault
    unsure = _serums(stack, "vault", "erase", ref, "--reason", "GDPR request 7", "--yes")
    assert unsure.returncode == 1 and "--hospital" in unsure.stderr and unsure.stderr.count("\n") == 1
    erased = _serums(stack, "vault", "erase", "--hospital", "lothian", ref, "--reason", "GDPR request 7", "--yes")
    assert erased.returncode == 0, erased.stderr
    report = json.loads(erased.stdout)
    assert report["verified"] and report["satellites"] > 0 and report["satellites_decrypted"] == 0

    # the gateway's vault (another process, warm caches) refuses the second token: the data key is gone
    refused = http.post("/doctors/records", token=token, json={"token": second.json["token"]["token"]})
    assert refused.status in (404, 410), refused
    assert refused.json["type"] in ("/problems/patient-erased", "/problems/patient-not-found"), refused
    with vault.open_vault(Settings.from_env({"SERUMS_DATA_DIR": str(stack.data_dir)}), "lothian") as v:
        assert ref not in v.patients()  # no data key row
        assert v.stats().erased >= 1
