"""``serums demo``: the 10-step flow through the HTTP API of a running ``serums up``, step by step,
with the evidence of each (transaction ids, the chain's reasons, what was withheld, the digest
logged on chain). A newcomer's tour; it only uses the public API, as a browser or app would.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pyotp

from .cli import CommandError
from .commands.demo import demo_user


class Tour:
    def __init__(self, settings):
        self.settings = settings
        from .datadir import running_file

        up = running_file(settings.data_dir, "up.json")  # None too when a killed `serums up` left it behind
        if not up or not up.get("url"):
            raise CommandError("SERUMS is not running: start it with `serums up` (in another terminal)")
        self.url = up["url"]
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self._used_steps: dict[str, int] = {}

    # ------------------------------------------------------------------ helpers

    def call(self, method: str, path: str, token: str | None = None, expect: tuple[int, ...] = (200, 201),
             **kw) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = self.http.request(method, path, headers=headers, **kw)
        body = r.json() if r.headers.get("content-type", "").endswith("json") else r.text
        if r.status_code not in expect:
            detail = body.get("detail") if isinstance(body, dict) else body
            raise CommandError(f"{method} {path} answered {r.status_code}: {detail}")
        return body

    def login(self, username: str) -> str:
        """Step 4 for anyone: FlexPass textual key, then the TOTP code of the user's authenticator."""
        u = demo_user(self.settings, username)
        challenge = self.call("POST", "/auth/login", json={"username": username, "method": "text",
                                                            "text_key": u["text_key"]})["challenge"]
        totp = pyotp.TOTP(u["totp_secret"])
        for offset in (0, 1, 2):  # a code is accepted once: a second run within 30 s takes the next one
            step = int(time.time() // 30) + offset
            if self._used_steps.get(username, -1) >= step:
                continue
            r = self.http.post("/auth/login/complete",
                               json={"challenge": challenge, "totp_code": totp.at(step * 30)})
            if r.status_code == 200:
                self._used_steps[username] = step
                return r.json()["access_token"]
            if offset:
                time.sleep(1)
        raise CommandError(f"could not complete {username}'s login with a TOTP code (clock skew?)")


def _say(n: str, text: str) -> None:
    print(f"\n── step {n} ── {text}", flush=True)


def _ev(text: str) -> None:
    print(f"   {text}", flush=True)


def run_tour(settings) -> int:
    t = Tour(settings)
    users = {u["username"]: u for u in json.loads((settings.data_dir / "demo-users.json").read_text())["users"]}
    patient, doctor, colleague, auditor = "patient.lothian1", "dr.hughes", "dr.brown", "auditor.martin"
    for name in (patient, doctor, colleague, auditor):
        if name not in users:
            raise CommandError(f"demo user {name} is missing: run `serums up` on a fresh data directory")
    print(f"SERUMS tour against {t.url}: {doctor} (specialist, NHS Lothian) asks to see {patient}'s record.")

    _say("1", "the hospital publishes its generic rules (PolicyContract)")
    p_token = t.login(patient)
    policy = t.call("GET", "/hospitals/lothian/policy", p_token)
    rules = policy.get("rules") or {}
    for rid in sorted(rules)[:6]:
        r = rules[rid]
        _ev(f"{rid}: {r.get('effect', 'allow')} {','.join(r.get('roles', []))} → "
            f"{','.join(r.get('sections', []))[:60]} for {','.join(r.get('purposes', []))}")

    _say("2", "the patient sets their own preferences (PreferenceContract, signed with their key)")
    prefs = t.call("GET", "/patients/me/preferences", p_token)
    for pid, pr in sorted((prefs.get("rules") or {}).items()):
        _ev(f"{pid}: {pr.get('effect')} {json.dumps(pr.get('grantee'))} {pr.get('sections')} {pr.get('purposes')}")

    _say("3", "the patient shares a short-lived, single-use code with the doctor")
    code = t.call("POST", "/patients/me/share-codes", p_token, json={"ttl_seconds": 300})
    _ev(f"share code {code['code']} (expires {code.get('expires_at')})")

    _say("4", "the doctor authenticates: FlexPass key + TOTP second factor → JWT session")
    d_token = t.login(doctor)
    me = t.call("GET", "/auth/me", d_token)
    _ev(f"logged in as {me.get('username')} ({me.get('role')}, {me.get('hospital')}), pseudonymous id "
        f"{me.get('user_id')}")

    _say("5-6", "the doctor requests access; the chain checks rules and consent and records the decision")
    d = t.call("POST", "/doctors/requests", d_token, json={"share_code": code["code"], "sections": ["*"],
                                                           "purpose": "treatment", "justification": "direct-care"})
    _ev(f"decision {d['outcome']} in transaction {d.get('transaction_id')}")
    for section, reason in sorted(d.get("reasons", {}).items()):
        _ev(f"  {section:<20} {'granted' if section in d.get('granted', []) else 'denied ':<8} ({reason})")
    if not d.get("token"):
        raise CommandError("the request was not granted; the demo data has changed (see the reasons above)")

    _say("7-8", "the patient's hospital's vault mints a token; its hash is bound on chain; the doctor gets it")
    tok = d["token"]
    _ev(f"token for grant {d['grant_id']} from the {tok.get('hospital')} vault, expires {tok.get('expires_at')}")
    _ev(f"token hash on chain: {tok.get('token_hash', '')}")

    _say("9-10", "the doctor presents the token; the vault releases only granted sections and logs the access")
    rel = t.call("POST", "/doctors/records", d_token, json={"token": tok["token"]})
    _ev(f"released: {', '.join(rel['sections'])}")
    _ev(f"withheld: {', '.join(rel.get('withheld', []))}")
    _ev(f"digest of what was returned, logged on chain: {rel['digest']}")

    _say("✗", f"{colleague} presents the same token (token theft): refused, and the refusal is logged")
    r = t.http.post("/doctors/records", headers={"Authorization": f"Bearer {t.login(colleague)}"},
                    json={"token": tok["token"]})
    _ev(f"{r.status_code} {r.json().get('type')}: {r.json().get('detail')}")

    _say("patient", "the patient sees who saw what, when and why")
    log = t.call("GET", "/patients/me/access-log", p_token)
    for item in (log.get("records") or [])[-3:]:
        rec = item.get("record", item)
        _ev(f"{rec.get('at')}: {rec.get('requester_id')} saw {rec.get('sections_returned')} "
            f"(grant {rec.get('grant_id')}, digest {str(rec.get('digest'))[:16]}…)")

    _say("auditor", "an auditor reads the decisions on the ledger and verifies the whole chain")
    a_token = t.login(auditor)
    trail = t.call("GET", "/audit/trail", a_token, params={"patient": users[patient]["user_id"], "kind": "decision"})
    _ev(f"{len(trail.get('records', []))} decision(s) on record for this patient")
    verify = t.call("GET", "/audit/ledger/verify", a_token)
    _ev(f"ledger verification: {'OK' if verify.get('ok') else 'FAILED'} "
        f"({verify.get('orderer_height')} blocks; problems: {verify.get('problems') or 'none'})")
    print("\nTour complete.", flush=True)
    return 0
