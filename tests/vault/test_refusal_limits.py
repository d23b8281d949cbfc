"""One presenter posting garbage tokens cannot grow the ledger without bound: per presenter and
minute, the first ``per_window`` refusals are logged one by one, the rest as one summary entry
when the minute ends; every refusal is still counted on the ledger."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading

import pytest

from vault import TokenError, Vault
from vault.ledger import Refusal
from vault.refusals import RefusalLog
from vault.tokens import token_hash

from .conftest import first_patient_id


def _garbage(vault: Vault, presenter: str, n: int, tag: str = "x") -> None:
    for i in range(n):
        with pytest.raises(TokenError):
            vault.redeem(f"srt1.garbage-{tag}-{i}.sig", presenter)


def _start_of_minute(clock) -> None:
    clock.now = clock.now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)


def test_a_flood_costs_per_window_entries_plus_one_summary(loaded: Vault, ledger, clock):
    _start_of_minute(clock)
    per = loaded.refusals.per_window
    _garbage(loaded, "dr-mallory", per + 40)
    _garbage(loaded, "dr-alice", 2, tag="a")  # somebody else's refusals are logged one by one
    assert [r.presenter_id for r in ledger.refusals].count("dr-mallory") == per
    assert [r.presenter_id for r in ledger.refusals].count("dr-alice") == 2
    assert ledger.summaries == []  # the minute has not ended
    clock.advance(60)
    _garbage(loaded, "dr-alice", 1, tag="b")  # the next refusal of anyone writes the ended window's summary
    [summary] = ledger.summaries
    assert summary.presenter_id == "dr-mallory" and summary.count == 40 and summary.tokens == 40
    assert summary.reasons == {"token-malformed": 40}
    assert summary.window_end - summary.window_start == dt.timedelta(minutes=1)
    assert summary.window_start <= ledger.refusals[0].at < summary.window_end
    # the next minute starts afresh: individual entries again
    _garbage(loaded, "dr-mallory", 1, tag="next")
    assert [r.presenter_id for r in ledger.refusals].count("dr-mallory") == per + 1


def test_the_summary_names_the_claimed_grants_and_digests_the_tokens(loaded: Vault, ledger, clock):
    _start_of_minute(clock)
    patient = loaded.find_patient(first_patient_id())
    grant = ledger.grant(patient, ["demographics"], requester="dr-alice")
    token = loaded.mint_token(grant.grant_id).token
    for _ in range(loaded.refusals.per_window + 3):  # a stolen token, presented again and again
        with pytest.raises(TokenError):
            loaded.redeem(token, "dr-mallory")
    loaded.close()  # closing writes what is pending
    [summary] = ledger.summaries
    assert summary.count == 3 and summary.reasons == {"token-presenter-mismatch": 3}
    assert summary.grant_ids == (grant.grant_id,) and summary.tokens == 1
    assert summary.token_hashes_digest == hashlib.sha256(token_hash(token).encode()).hexdigest()


def test_concurrent_refusals_never_exceed_the_bound():
    now = [dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)]
    ones, summaries = [], []
    log = RefusalLog(ones.append, summaries.append, clock=lambda: now[0], per_window=5, timer=False)

    def flood(k: int) -> None:
        for i in range(50):
            log.record(Refusal("token-malformed", "", "dr-mallory", f"{k:02d}{i:062d}", None, now[0]))

    threads = [threading.Thread(target=flood, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert len(ones) == 5 and len(summaries) == 1
    assert summaries[0].count == 8 * 50 - 5 and summaries[0].tokens == 8 * 50 - 5


def test_the_timer_writes_the_summary_after_the_window():
    ones, summaries = [], []
    log = RefusalLog(ones.append, summaries.append, clock=lambda: dt.datetime.now(dt.UTC), per_window=0,
                     window=dt.timedelta(milliseconds=200))
    log.record(Refusal("token-malformed", "", "dr-mallory", "0" * 64, None, dt.datetime.now(dt.UTC)))
    assert summaries == []
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    while not summaries and dt.datetime.now(dt.UTC) < deadline:
        threading.Event().wait(0.05)
    assert len(summaries) == 1 and summaries[0].count == 1
