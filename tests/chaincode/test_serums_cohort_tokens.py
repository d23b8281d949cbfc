"""TransportContract's cohort tokens: a hospital's vault binds the hash of a token minted for its own
analytics service; each release of cohort rows is checked and logged in one transaction."""

from __future__ import annotations

import datetime as dt

from .conftest import Cast, World, refused, uid
from .test_serums_transport import allow, h

SECS = ["comorbidities", "oncology.toxicity"]


def _cohort(world: World, cast: Cast):
    yes = [world.patient("lothian", [allow("role", "researcher", purposes=["research"])]) for _ in range(3)]
    c = cast.researcher.submit("TransportContract", "RequestCohort", [p.name for p in yes], SECS, "research",
                               "research-protocol")
    return c, yes


def _later(cohort: dict, seconds: int = 600) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat()


def test_bind_release_and_list(world: World, cast: Cast):
    c, yes = _cohort(world, cast)
    cid, th = c["cohort_id"], h(uid("tok"))
    t = cast.vault.tx("TransportContract", "BindCohortToken", cid, th, cast.analytics.name, _later(c))
    assert t.result["presenter_id"] == cast.analytics.name and t.result["hospital"] == cast.vault.msp
    assert cast.vault.event(t.status)[0] == "CohortTokenBound"
    got = cast.analytics.evaluate("TransportContract", "GetCohortToken", cid, th)
    assert got["live"] and got["sections"] == SECS
    rel = cast.vault.submit("TransportContract", "ReleaseCohort", cid, th, [p.name for p in yes], SECS, h("rows"))
    assert rel["patients"] == 3 and rel["digest"] == h("rows") and rel["presenter_id"] == cast.analytics.name
    assert "patients" not in {k for k, v in rel.items() if isinstance(v, list)}  # only a count and a digest
    listed = cast.auditor.evaluate("TransportContract", "CohortReleases", cid, 10, "")
    assert [r["release_id"] for r in listed["records"]] == [rel["release_id"]]


def test_binding_is_refused_for_others_and_dead_cohorts(world: World, cast: Cast):
    c, _ = _cohort(world, cast)
    cid = c["cohort_id"]
    refused(403, "vault", cast.analytics.submit, "TransportContract", "BindCohortToken", cid, h("a"),
            cast.analytics.name, _later(c))
    refused(400, "presenter_id", cast.vault.submit, "TransportContract", "BindCohortToken", cid, h("b"),
            cast.researcher.name, _later(c))
    other = world.user("zmc", "analytics")
    refused(403, "its own analytics service", cast.vault.submit, "TransportContract", "BindCohortToken", cid,
            h("c"), other.name, _later(c))
    refused(400, "expires_at", cast.vault.submit, "TransportContract", "BindCohortToken", cid, h("d"),
            cast.analytics.name, _later(c, 400 * 86400))
    th = h(uid("e"))
    cast.vault.submit("TransportContract", "BindCohortToken", cid, th, cast.analytics.name, _later(c))
    refused(409, "already bound", cast.vault.submit, "TransportContract", "BindCohortToken", cid, th,
            cast.analytics.name, _later(c))
    cast.researcher.submit("TransportContract", "RevokeCohort", cid, "relinquished")
    refused(409, "cohort-revoked", cast.vault.submit, "TransportContract", "BindCohortToken", cid, h("f"),
            cast.analytics.name, _later(c))


def test_release_refusals(world: World, cast: Cast):
    c, yes = _cohort(world, cast)
    cid, th = c["cohort_id"], h(uid("tok"))
    names = [p.name for p in yes]
    refused(409, "token-not-bound", cast.vault.submit, "TransportContract", "ReleaseCohort", cid, th, names, SECS,
            h("x"))
    cast.vault.submit("TransportContract", "BindCohortToken", cid, th, cast.analytics.name, _later(c, 60))
    refused(409, "token-not-bound", cast.zvault.submit, "TransportContract", "ReleaseCohort", cid, th, [], SECS,
            h("x"))  # another hospital's vault cannot use this site's token
    refused(409, "token-grant-mismatch", cast.vault.submit, "TransportContract", "ReleaseCohort", cid, th, names,
            [*SECS, "demographics"], h("x"))
    outsider = world.patient("lothian")
    refused(409, "member-not-active", cast.vault.submit, "TransportContract", "ReleaseCohort", cid, th,
            [*names, outsider.name], SECS, h("x"))
    # a member who withdraws consent is withdrawn from the cohort: releasing their rows is refused
    consent = next(iter(yes[0].evaluate("PreferenceContract", "ListPreferences", yes[0].name)["rules"]))
    yes[0].submit("PreferenceContract", "WithdrawPreference", yes[0].name, consent)
    refused(409, "member-not-active", cast.vault.submit, "TransportContract", "ReleaseCohort", cid, th, names, SECS,
            h("x"))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    refused(409, "token-expired", cast.vault.submit, "TransportContract", "ReleaseCohort", cid, th, names[1:], SECS,
            h("x"), at=later)
    cast.vault.submit("TransportContract", "ReleaseCohort", cid, th, names[1:], SECS, h("x"))
    cast.researcher.submit("TransportContract", "RevokeCohort", cid, "relinquished")
    refused(409, "cohort-revoked", cast.vault.submit, "TransportContract", "ReleaseCohort", cid, th, names[1:], SECS,
            h("x"))
    assert cast.auditor.evaluate("TransportContract", "CohortReleases", cid, 10, "")["count"] == 1
