"""Garbage record tokens through the API, on the real chain: every refusal is answered and
counted on the ledger, but one presenter adds at most ``per_window`` individual refusal entries
and one summary a minute (once, 50 garbage tokens a second each became a transaction)."""

from __future__ import annotations

from .stack import enrol


def test_a_presenter_flooding_garbage_tokens_writes_a_bounded_trail(world, http):
    gp = enrol(world.services, "lothian", "gp")
    tok = http.login(gp)
    vault = world.services.vault("lothian")
    per = vault.refusals.per_window
    vault.refusals.flush(everything=True)
    flood = per + 15
    for i in range(flood):
        r = http.post("/doctors/records", token=tok, json={"token": f"srt1.garbage{i}.sig"})
        assert r.status in (400, 403) and r.json["type"].startswith("/problems/token-"), r
    trail = http.get("/doctors/grants", token=tok, params={"kind": "refusal", "page_size": 100}).json["records"]
    individual = [x["record"] for x in trail if not x["record"].get("summary")]
    assert len(individual) <= per  # a minute boundary inside the loop can only lower it
    vault.refusals.flush(everything=True)  # what the timer does at the end of the minute
    trail = http.get("/doctors/grants", token=tok, params={"kind": "refusal", "page_size": 100}).json["records"]
    records = [x["record"] for x in trail]
    summaries = [r for r in records if r.get("summary")]
    assert 1 <= len(summaries) <= 2 and len(records) <= per * 2 + 2
    assert len(individual) + sum(s["count"] for s in summaries) == flood  # every refusal is counted
    assert all(s["presenter_id"] == gp.user_id and s["reasons"] == {"token-malformed": s["count"]}
               for s in summaries)
