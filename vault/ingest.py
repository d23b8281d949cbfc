"""Writing converted rows into the data vault, inside the caller's transaction.

One ``BatchWriter`` serves one ingest (one transaction, one load timestamp). It works a chunk
of rows at a time: it finds or creates each patient's data key, computes hub and link hash
keys, skips satellite versions whose keyed hash diff equals the current one (insert-only, but
no duplicate versions), seals the new ones and bulk-inserts everything. Nothing is committed
here: the caller commits once at the end, so a failure — or a killed process — leaves nothing.

Pipelining: a chunk's inserts run on a background thread (on the transaction's connection)
while the next chunks are computed (at most ``_FLUSH_DEPTH`` waiting). Lookups of what the
vault already holds go through a second connection, which sees committed data only — enough,
because everything this ingest wrote itself is tracked in memory (patients seen, hubs known,
current hash diffs and links).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import operator
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import schema as S
from .errors import IngestError
from .keys import DataKey, bk_aad, dek_aad, nonce_stream, sat_aad_prefix
from .recordformat import PERSON, HubSpec, RecordFormat, TableSpec

if TYPE_CHECKING:
    from .core import Vault

_FLUSH_DEPTH = 2  # chunks computed ahead of the database: smooths the pipeline when either side stalls
_CHUNK_QUERY = 500  # IN (...) lists are cut to this size (SQLite's parameter limit, plan sizes)


def _chunks(items: Sequence[str], n: int = _CHUNK_QUERY):
    for i in range(0, len(items), n):
        yield items[i:i + n]


# json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode(value), byte for byte, without
# building a new C encoder on every call (the hash diff is over these bytes, so they must not change).
_C_ENCODE = json.encoder.c_make_encoder(None, json.JSONEncoder().default, json.encoder.c_encode_basestring, None,
                                        ":", ",", False, False, True) if json.encoder.c_make_encoder else None
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _json(value: Any) -> bytes:
    if _C_ENCODE is None:
        return _ENCODE(value).encode("utf-8")
    return "".join(_C_ENCODE(value, 0)).encode("utf-8")


def driving_key_is_target(from_kind: str, to_kind: str) -> bool:
    """Which end of a link identifies it over time (its driving key).

    Links are insert-only; the latest row for a driving key is the effective one. For links
    from an event (an admission's main condition, its location…) the event drives: a new row
    supersedes the old target. A person has many events, so for person -> event links the
    event drives; for person -> anything else (the registering hospital) the person does.
    """
    return from_kind == "person" and to_kind == "event"


def link_key(name: str, from_hk: str, to_hk: str | None) -> str:
    """A link's hash key. Its parts are already keyed hub hashes, so a plain (fast) hash suffices."""
    return hashlib.blake2b(f"{name}\x1f{from_hk}\x1f{to_hk or '-'}".encode(), digest_size=16).hexdigest()


def link_key_prefix(name: str) -> Any:
    """The hash state of ``link_key(name, …)`` after its name: copy it, then update with
    ``f"{from_hk}\\x1f{to_hk or '-'}"`` (what the bulk writer does, once a link)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{name}\x1f".encode())
    return h


def _tuple_getter(columns: Sequence[str]) -> Callable[[dict[str, Any]], tuple]:
    """``lambda row: tuple(row[c] for c in columns)``, at C speed."""
    if not columns:
        return lambda row: ()
    if len(columns) == 1:
        only = columns[0]
        return lambda row: (row[only],)
    return operator.itemgetter(*columns)


def time_instant(value: str) -> tuple[_dt.datetime, str]:
    """A time hub's instant and grain from a converted date or datetime value."""
    if len(value) == 10:
        return _dt.datetime.fromisoformat(value).replace(tzinfo=_dt.UTC), "day"
    return _dt.datetime.fromisoformat(value.replace("Z", "+00:00")), "instant"


@dataclass
class _SatPlan:
    qname: str
    hub: str
    section: str
    columns: tuple[str, ...]
    skip_if_empty: tuple[str, ...]
    qname_prefix: bytes


@dataclass
class _LinkPlan:
    qname: str
    from_hub: str
    to_hub: str
    section: str
    event_driven: bool  # person -> event: the event is the driving key (a person has many events)


@dataclass
class _Plan:
    table: TableSpec
    record_source: str
    hubs: list[HubSpec]
    links: list[_LinkPlan]
    sats: list[_SatPlan]


class BatchWriter:
    def __init__(self, vault: Vault, conn: sa.Connection, fmt: RecordFormat, batch_id: str,
                 load_ts: _dt.datetime, reader: sa.Connection | None = None):
        self.vault = vault
        self.conn = conn  # the write transaction; used only by the flusher while one is pending
        self.reader = reader or conn  # lookups of committed state
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vault-flush") if reader else None
        self._pending: deque[Future] = deque()  # flushes submitted, oldest first
        self.fmt = fmt
        self.batch_id = batch_id
        self.load_ts = load_ts
        self.load_iso = vault.iso(load_ts)
        self.db_ts = vault.db_timestamp(load_ts)
        self.hk = vault.hash_keys
        self.kek = vault.kek
        self.encrypt = vault.encrypts_payloads
        self._nonce = nonce_stream().__next__  # this ingest's nonces, drawn from the OS in blocks
        self._plans: dict[str, _Plan] = {}
        self.person_hk: dict[str, str] = {}  # national id -> person hk
        self.keys: dict[str, DataKey] = {}  # person hk -> data key
        self.preexisting: dict[str, DataKey] = {}  # patients the vault held before this ingest
        self.state_loaded: dict[str, set[str]] = {}  # table -> patients whose state is loaded
        self.sat_state: dict[tuple[str, str], str] = {}  # (hub hk, satellite) -> current hash diff
        self.seen_values: dict[tuple[str, str], tuple] = {}  # (hub hk, satellite) -> values last written here
        self.link_state: dict[tuple[str, str], str | None] = {}  # (from hk, link) -> current target
        self.known: set[str] = set()  # hub hash keys known to exist
        self.ref_hk: dict[tuple[str, ...], str] = {}
        # counters for the report
        self.rows_read = 0
        self.rows_per_table: dict[str, int] = {}
        self.satellites_written = 0
        self.satellites_unchanged = 0
        self.links_written = 0
        self.hubs_written = 0
        self.patients_new = 0

    # ------------------------------------------------------------------ plans
    def plan(self, table: TableSpec) -> _Plan:
        plan = self._plans.get(table.name)
        if plan is None:
            sats = [_SatPlan(table.qualified(s.name), s.hub, s.section, s.columns, s.skip_if_empty,
                             table.qualified(s.name).encode() + b"\x1f") for s in table.satellites.values()]
            links = [_LinkPlan(table.qualified(link.name), link.from_hub, link.to_hub, link.section,
                               link.from_hub == PERSON and table.hubs[link.to_hub].kind == "event")
                     for link in table.links.values()]
            plan = _Plan(table, f"{self.fmt.name}.{table.name}", list(table.hubs.values()), links, sats)
            self._plans[table.name] = plan
        return plan

    # ------------------------------------------------------------------ patients
    def _prepare_patients(self, plan: _Plan, national_ids: set[str], out: dict[str, list[tuple]]) -> None:
        """Find or create the data key of every patient of a chunk; load what the vault already
        holds of the patients that existed before this ingest (for this table's satellites and links)."""
        fresh = []
        for nid in national_ids:
            if nid not in self.person_hk:
                phk = self.hk("person", nid)
                self.person_hk[nid] = phk
                fresh.append((nid, phk))
        existing: dict[str, DataKey] = {}
        for part in _chunks([phk for _, phk in fresh]):
            rows = self.reader.execute(
                sa.select(S.data_keys.c.dek_id, S.data_keys.c.person_hk, S.data_keys.c.wrapped,
                          S.data_keys.c.kek_id).where(S.data_keys.c.person_hk.in_(part))
            ).all()
            for r in rows:
                existing[r.person_hk] = self.vault.unwrap_data_key(r.dek_id, r.person_hk, r.wrapped, r.kek_id)
        self.preexisting.update(existing)
        ts, src = self.db_ts, plan.record_source
        for nid, phk in fresh:
            self.known.add(phk)
            if phk in existing:
                self.keys[phk] = existing[phk]
                continue
            dek = DataKey.generate()
            self.keys[phk] = dek
            self.patients_new += 1
            out["data_keys"].append((dek.dek_id, phk, self.kek.kek_id, self.kek.wrap(dek.key, dek_aad(dek.dek_id, phk)),
                                     dek.fingerprint, ts))
            out["person"].append((phk, dek.dek_id, dek.seal(nid.encode(), bk_aad("person", phk, dek.dek_id)), ts,
                                  src, self.batch_id))
            self.vault.remember_key(phk, dek)
        loaded = self.state_loaded.setdefault(plan.table.name, set())
        need = [phk for phk in (self.person_hk[n] for n in national_ids) if phk in self.preexisting
                and phk not in loaded]
        if need:
            loaded.update(need)
            self._load_state(plan, need)

    def _load_state(self, plan: _Plan, patients: list[str]) -> None:
        """Current hash diffs, effective links and event hubs of patients already in the vault —
        only of the satellites, links and event types this table writes."""
        sats = [sp.qname for sp in plan.sats]
        links = [lp.qname for lp in plan.links]
        events = sorted({h.type for h in plan.hubs if h.kind == "event"})
        sat, lk, ev = S.satellites.c, S.links.c, S.hub_event.c
        for part in _chunks(patients):
            dek_ids = [self.preexisting[phk].dek_id for phk in part]
            if sats:
                q = (sa.select(sat.hub_hk, sat.satellite, sat.hash_diff)
                     .where(sat.dek_id.in_(dek_ids), sat.satellite.in_(sats)).order_by(sat.load_ts, sat.id))
                for r in self.reader.execute(q):
                    self.sat_state[(r.hub_hk, r.satellite)] = r.hash_diff
            if links:
                q = (sa.select(lk.from_kind, lk.from_hk, lk.name, lk.to_kind, lk.to_hk)
                     .where(lk.patient_hk.in_(part), lk.name.in_(links)).order_by(lk.load_ts, lk.id))
                for r in self.reader.execute(q):
                    if driving_key_is_target(r.from_kind, r.to_kind):
                        self.link_state[(r.to_hk, r.name)] = r.from_hk
                    else:
                        self.link_state[(r.from_hk, r.name)] = r.to_hk
            if events:
                for r in self.reader.execute(sa.select(ev.hk).where(ev.patient_hk.in_(part), ev.type.in_(events))):
                    self.known.add(r.hk)

    # ------------------------------------------------------------------ rows
    def write(self, table: TableSpec, rows: list[dict[str, Any]]) -> None:
        """Write converted rows: tuples in the column order of ``COLUMNS``, one bulk insert a table."""
        plan = self.plan(table)
        src = plan.record_source
        pcol = table.person_column
        out: dict[str, list[tuple]] = {k: [] for k in COLUMNS}
        ref_new: dict[str, dict[str, tuple]] = {"object": {}, "location": {}, "time": {}}
        self._prepare_patients(plan, {r[pcol] for r in rows}, out)
        events, links, sats = out["event"], out["links"], out["satellites"]
        hk = self.hk
        ts, load_iso, batch_id = self.db_ts, self.load_iso, self.batch_id
        known, sat_state, link_state, ref_hk = self.known, self.sat_state, self.link_state, self.ref_hk
        seen = self.seen_values
        encrypt = self.encrypt
        nonce = self._nonce
        event_hk: dict[tuple[str, str, str], str] = {}  # (type, person, key) -> hash key, this chunk
        hub_plans = [(h.name, h.kind, h.type, h.key, h.system) for h in plan.hubs]
        link_plans = [(lp.qname, lp.from_hub, lp.to_hub, lp.section, lp.event_driven, self._kind_of(plan, lp.to_hub),
                       link_key_prefix(lp.qname)) for lp in plan.links]
        # (aad prefix + suffix is sat_aad(...); values_of/empty_of are itemgetters that always give tuples)
        sat_plans = [(sp.qname, sp.hub, sp.section, sp.columns, _tuple_getter(sp.columns),
                      _tuple_getter(sp.skip_if_empty) if sp.skip_if_empty else None, sp.qname_prefix,
                      sat_aad_prefix(sp.qname, sp.section, load_iso, src)) for sp in plan.sats]
        mac_hex = DataKey.hash_diff
        for row in rows:
            phk = self.person_hk[row[pcol]]
            dek = self.keys[phk]
            dek_id = dek.dek_id
            hubs: dict[str, tuple[str, str] | None] = {PERSON: ("person", phk)}
            for name, kind, htype, key, system in hub_plans:
                if len(key) == 1:
                    v = row[key[0]]
                    if v is None:
                        hubs[name] = None
                        continue
                    bk = str(v)
                else:
                    values = [row[c] for c in key]
                    if None in values:
                        hubs[name] = None
                        continue
                    bk = "|".join(str(v) for v in values)
                if kind == "event":
                    ekey = (htype, phk, bk)
                    ehk = event_hk.get(ekey)
                    if ehk is None:
                        ehk = event_hk[ekey] = hk("event", htype, phk, bk)
                    hubs[name] = ("event", ehk)
                    if ehk not in known:
                        known.add(ehk)
                        events.append((ehk, htype, phk, dek_id,
                                       dek.seal(bk.encode(), bk_aad("event", ehk, dek_id), nonce()),
                                       ts, src, batch_id))
                    continue
                ref_key = (kind, htype, bk)
                rhk = ref_hk.get(ref_key)
                if rhk is None:
                    rhk = ref_hk[ref_key] = hk(kind, htype, bk)
                hubs[name] = (kind, rhk)
                if rhk in known or rhk in ref_new[kind]:
                    continue
                if kind == "object":
                    ref_new[kind][rhk] = (rhk, htype, self.fmt.system_uri(system), bk, ts, src, batch_id)
                elif kind == "location":
                    loc = self.fmt.locations.get(bk)
                    ref_new[kind][rhk] = (rhk, bk, loc.name if loc else None, loc.latitude if loc else None,
                                          loc.longitude if loc else None, loc.altitude if loc else None,
                                          ts, src, batch_id)
                else:
                    instant, grain = time_instant(bk)
                    ref_new[kind][rhk] = (rhk, self.vault.db_timestamp(instant), grain, ts, src, batch_id)
            for qname, from_hub, to_hub, section, event_driven, to_kind, lk_prefix in link_plans:
                src_hub = hubs.get(from_hub)
                if src_hub is None:
                    continue
                dst = hubs.get(to_hub)
                if event_driven:
                    if dst is None:
                        continue
                    key_, value = (dst[1], qname), src_hub[1]
                else:
                    key_, value = (src_hub[1], qname), (dst[1] if dst else None)
                if value == link_state.get(key_):
                    continue  # unchanged, or still absent
                link_state[key_] = value
                target = dst[1] if dst else None
                h = lk_prefix.copy()  # link_key(qname, src_hub[1], target), its prefix hashed once
                h.update(f"{src_hub[1]}\x1f{target or '-'}".encode())
                links.append((h.hexdigest(), qname, section, phk, src_hub[0], src_hub[1],
                              dst[0] if dst else to_kind, target, ts, src, batch_id))
            for qname, hub_name, section, columns, values_of, empty_of, qname_prefix, aad_pre in sat_plans:
                hub = hubs.get(hub_name)
                if hub is None:
                    continue
                state_key = (hub[1], qname)
                if empty_of is not None and state_key not in sat_state and not any(
                        v is not None for v in empty_of(row)):
                    continue
                values = values_of(row)
                if seen.get(state_key) == values:  # repeated in this ingest (a cycle on every drug row)
                    self.satellites_unchanged += 1
                    continue
                seen[state_key] = values
                data = _json(dict(zip(columns, values, strict=True)))
                hd = mac_hex(dek, qname_prefix + data)
                if sat_state.get(state_key) == hd:
                    self.satellites_unchanged += 1
                    continue
                sat_state[state_key] = hd
                sealed = dek.seal(data, aad_pre + f"{hub[0]}\x1f{hub[1]}\x1f{dek_id}\x1f{hd}".encode(),
                                  nonce()) if encrypt else data
                sats.append((hub[0], hub[1], qname, section, dek_id, ts, src, hd, batch_id, sealed))
        for kind, new in ref_new.items():
            if not new:
                continue
            table_ = S.HUB_TABLES[kind]
            missing = dict(new)
            for part in _chunks(list(new)):
                for r in self.reader.execute(sa.select(table_.c.hk).where(table_.c.hk.in_(part))):
                    missing.pop(r.hk, None)
            known.update(new)
            out[kind].extend(missing.values())
        if self._executor is None:
            self._flush(out)
            return
        while len(self._pending) >= _FLUSH_DEPTH:
            self._pending.popleft().result()
        self._pending.append(self._executor.submit(self._flush, out))

    def wait(self) -> None:
        """Wait for every pending flush; re-raise the first failure."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        """Finish (or, after a failure, abandon) the pending flush and stop the flusher thread.

        Must run before the transaction ends, so that no insert races the commit or rollback.
        """
        try:
            self.wait()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)

    def _kind_of(self, plan: _Plan, hub_name: str) -> str:
        return "person" if hub_name == PERSON else plan.table.hubs[hub_name].kind

    def _flush(self, out: dict[str, list[tuple]]) -> None:
        try:
            for name, (table, columns, may_conflict) in COLUMNS.items():
                rows = out[name]
                if rows:
                    self.vault.bulk_insert(self.conn, table, columns, rows, ignore_conflicts=may_conflict)
        except Exception as exc:
            if _is_unique_violation(exc):
                raise IngestError("a concurrent ingest created the same patients; nothing was written — "
                                  "run it again") from exc
            raise
        self.hubs_written += sum(len(out[k]) for k in ("person", "event", "object", "location", "time"))
        self.links_written += len(out["links"])
        self.satellites_written += len(out["satellites"])


def _is_unique_violation(exc: BaseException) -> bool:
    if isinstance(exc, sa.exc.IntegrityError | sqlite3.IntegrityError):
        return True
    return getattr(exc, "sqlstate", None) == "23505"  # psycopg's UniqueViolation


# Insert order and column order of every table the writer fills. Reference hubs may be created
# by a concurrent ingest at the same time: they are inserted with ON CONFLICT DO NOTHING.
COLUMNS: dict[str, tuple[sa.Table, tuple[str, ...], bool]] = {
    "data_keys": (S.data_keys, ("dek_id", "person_hk", "kek_id", "wrapped", "fingerprint", "created_at"), False),
    "person": (S.hub_person, ("hk", "dek_id", "bk_sealed", "load_ts", "record_source", "batch_id"), False),
    "event": (S.hub_event, ("hk", "type", "patient_hk", "dek_id", "bk_sealed", "load_ts", "record_source",
                            "batch_id"), False),
    "object": (S.hub_object, ("hk", "type", "system", "code", "load_ts", "record_source", "batch_id"), True),
    "location": (S.hub_location, ("hk", "code", "name", "latitude", "longitude", "altitude", "load_ts",
                                  "record_source", "batch_id"), True),
    "time": (S.hub_time, ("hk", "instant", "grain", "load_ts", "record_source", "batch_id"), True),
    "links": (S.links, ("hk", "name", "section", "patient_hk", "from_kind", "from_hk", "to_kind", "to_hk", "load_ts",
                        "record_source", "batch_id"), False),
    "satellites": (S.satellites, ("hub_kind", "hub_hk", "satellite", "section", "dek_id", "load_ts",
                                  "record_source", "hash_diff", "batch_id", "sealed"), False),
}
