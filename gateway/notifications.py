"""Notifications: the chain's events, turned into messages for the people they concern.

:class:`NotificationService` follows the ``serums`` chaincode's events (the Gateway's
``ChaincodeEvents`` stream, read by a vault service identity) and writes each person's
notifications to :class:`NotificationStore` — in the same database transaction as the
checkpoint (the block and transaction of the last event handled). A restarted service resumes
after that transaction: no event is lost, and none is handled twice (a notification's key is
also unique: transaction id, person, kind). Each new notification is then published to MQTT
for a phone app (QoS 1, best effort: the store is the record).

=====================  =========================  ===========================================
event                  who is told                kind
=====================  =========================  ===========================================
``AccessLogged``       the patient                ``access`` (not for their own reads)
``BreakGlass``         the patient, at once       ``break-glass``
``AccessDenied``       the patient                ``refusal``
``GrantRevoked``       the requester              ``revocation``
``BreakGlassReviewed`` the requester              ``review``
=====================  =========================  ===========================================

MQTT topics: ``serums/<hospital>/users/<user id>/notifications/<kind>``, one JSON message per
notification (``id``, ``kind``, ``text``, ``at``, ``ref``); a phone app subscribes to
``serums/<hospital>/users/<its user id>/notifications/#``. People choose the kinds they receive
(:meth:`NotificationStore.set_kinds`); a kind switched off is neither stored nor published.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Boolean, Float, Integer, String, UniqueConstraint
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from . import ledger as L
from . import problems as P
from . import vocab as V

log = logging.getLogger("serums.gateway.notifications")

KINDS = {
    "access": "Someone opened my record",
    "break-glass": "Emergency (break-glass) access to my record",
    "refusal": "A request for my record was refused",
    "revocation": "A permission I held was revoked",
    "review": "An auditor reviewed my emergency access",
}
CHECKPOINT = "chaincode-events"


class Base(DeclarativeBase):
    pass


class NotificationRow(Base):
    __tablename__ = "web_notifications"
    __table_args__ = (UniqueConstraint("event_key", "user_id", "kind", name="uq_web_notification_event"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    hospital: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(String(1000))
    ref: Mapped[str] = mapped_column(String(200))
    event_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)
    read_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class CheckpointRow(Base):
    __tablename__ = "web_notification_checkpoints"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    block_number: Mapped[int] = mapped_column(Integer)
    transaction_id: Mapped[str] = mapped_column(String(128))


class KindChoiceRow(Base):
    __tablename__ = "web_notification_kinds"
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)


@dataclass(frozen=True)
class Notification:
    id: int
    user_id: str
    hospital: str
    kind: str
    text: str
    ref: str
    created_at: float
    read_at: float | None

    def message(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "text": self.text, "ref": self.ref, "at": self.created_at}


@dataclass(frozen=True)
class Draft:
    """A notification an event calls for, before it is stored."""

    user_id: str
    hospital: str
    kind: str
    text: str
    ref: str


def _n(r: NotificationRow) -> Notification:
    return Notification(r.id, r.user_id, r.hospital, r.kind, r.text, r.ref, r.created_at, r.read_at)


class NotificationStore:
    """Each person's notifications, their choice of kinds, and the event checkpoint (one database)."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time):
        self.engine = engine
        self.clock = clock
        self._db = sessionmaker(engine, expire_on_commit=False)

    def create_tables(self) -> None:
        Base.metadata.create_all(self.engine)

    # ------------------------------------------------------------------ writing (the service)

    def checkpoint(self) -> tuple[int, str] | None:
        with self._db() as s:
            row = s.get(CheckpointRow, CHECKPOINT)
            return (row.block_number, row.transaction_id) if row else None

    def record(self, block_number: int, transaction_id: str, drafts: Iterable[Draft]) -> list[Notification]:
        """Store the notifications of one event and move the checkpoint past it, atomically. A
        notification already stored for this event (a replay) is not stored again."""
        out: list[Notification] = []
        with self._db.begin() as s:
            now = self.clock()
            for d in drafts:
                if not self._wants(s, d.user_id, d.kind):
                    continue
                exists = s.execute(sa.select(NotificationRow.id).where(
                    NotificationRow.event_key == transaction_id, NotificationRow.user_id == d.user_id,
                    NotificationRow.kind == d.kind)).first()
                if exists:
                    continue
                row = NotificationRow(user_id=d.user_id, hospital=d.hospital, kind=d.kind, text=d.text, ref=d.ref,
                                      event_key=transaction_id, created_at=now, read_at=None)
                s.add(row)
                s.flush()
                out.append(_n(row))
            cp = s.get(CheckpointRow, CHECKPOINT)
            if cp is None:
                s.add(CheckpointRow(name=CHECKPOINT, block_number=block_number, transaction_id=transaction_id))
            else:
                cp.block_number, cp.transaction_id = block_number, transaction_id
        return out

    # ------------------------------------------------------------------ reading (the pages)

    def unread_count(self, user_id: str) -> int:
        with self._db() as s:
            return s.scalar(sa.select(sa.func.count()).select_from(NotificationRow).where(
                NotificationRow.user_id == user_id, NotificationRow.read_at.is_(None))) or 0

    def list(self, user_id: str, limit: int = 100) -> list[Notification]:
        """Newest first."""
        with self._db() as s:
            rows = s.scalars(sa.select(NotificationRow).where(NotificationRow.user_id == user_id)
                             .order_by(NotificationRow.id.desc()).limit(limit))
            return [_n(r) for r in rows]

    def get(self, user_id: str, notification_id: int) -> Notification | None:
        """One of the user's notifications (None when there is no such one, or it is someone else's)."""
        with self._db() as s:
            row = s.get(NotificationRow, notification_id)
            return _n(row) if row is not None and row.user_id == user_id else None

    def mark_read(self, user_id: str, notification_id: int | None = None) -> int:
        """Mark one (or, with None, every) unread notification of the user as read."""
        q = sa.update(NotificationRow).where(NotificationRow.user_id == user_id, NotificationRow.read_at.is_(None))
        if notification_id is not None:
            q = q.where(NotificationRow.id == notification_id)
        with self._db.begin() as s:
            return s.execute(q.values(read_at=self.clock())).rowcount or 0

    def kinds(self, user_id: str) -> dict[str, bool]:
        """Every kind and whether the user receives it (all of them unless switched off)."""
        with self._db() as s:
            chosen = {r.kind: r.enabled for r in s.scalars(sa.select(KindChoiceRow).where(
                KindChoiceRow.user_id == user_id))}
        return {k: chosen.get(k, True) for k in KINDS}

    def set_kinds(self, user_id: str, enabled: Iterable[str]) -> None:
        on = set(enabled)
        unknown = on - set(KINDS)
        if unknown:
            raise P.Problem(P.VALIDATION, f"no notification kind {sorted(unknown)[0]!r} ({', '.join(KINDS)})")
        with self._db.begin() as s:
            for k in KINDS:
                row = s.get(KindChoiceRow, (user_id, k))
                if row is None:
                    s.add(KindChoiceRow(user_id=user_id, kind=k, enabled=k in on))
                else:
                    row.enabled = k in on

    def _wants(self, s, user_id: str, kind: str) -> bool:
        row = s.get(KindChoiceRow, (user_id, kind))
        return row is None or row.enabled


# --------------------------------------------------------------------------- what an event means


def _sections(doc: dict, key: str = "sections") -> str:
    return ", ".join(V.SECTION_LABELS.get(s, s).lower() for s in doc.get(key) or []) or "no sections"


def _purpose(doc: dict) -> str:
    return V.PURPOSE_LABELS.get(doc.get("purpose", ""), doc.get("purpose", "")).lower()


def drafts_for(event_name: str, doc: dict, name_of: Callable[[str], str],
               hospital_of: Callable[[str], str]) -> list[Draft]:
    """The notifications one chaincode event calls for (``name_of``: a user id → how to name them;
    ``hospital_of``: an MSP id → the hospital's name, for the topic)."""
    patient = doc.get("patient") or ""
    requester = doc.get("requester_id") or ""
    if event_name == "AccessLogged" and requester and requester != patient:
        return [Draft(patient, hospital_of(doc.get("patient_hospital", "")), "access",
                      f"{name_of(requester)} opened your record ({_sections(doc, 'sections_returned')}) for "
                      f"{_purpose(doc)}.", doc.get("grant_id") or "")]
    if event_name == "BreakGlass":
        return [Draft(patient, hospital_of(doc.get("patient_hospital", "")), "break-glass",
                      f"Emergency access: {name_of(requester)} broke the glass to open your record "
                      f"({_sections(doc)}). An auditor will review it.", doc.get("grant_id") or "")]
    if event_name == "AccessDenied":
        denied = _sections({"s": [d.get("section", "") for d in doc.get("denied") or []]}, "s")
        return [Draft(patient, hospital_of(doc.get("patient_hospital", "")), "refusal",
                      f"{name_of(requester)} asked for your record ({denied}) for {_purpose(doc)} and was "
                      "refused.", doc.get("request_id") or "")]
    if event_name == "GrantRevoked" and requester and doc.get("grant_id"):
        return [Draft(requester, hospital_of(doc.get("requester_hospital", "")), "revocation",
                      f"Your access {doc['grant_id'][:24]}… to a record was revoked "
                      f"({doc.get('reason', '').replace('-', ' ')}).", doc["grant_id"])]
    if event_name == "BreakGlassReviewed" and requester:
        return [Draft(requester, hospital_of(doc.get("requester_hospital", "")), "review",
                      f"An auditor reviewed your emergency access {doc.get('grant_id', '')[:24]}…: "
                      f"{doc.get('outcome', '')}.", doc.get("grant_id") or "")]
    return []


# --------------------------------------------------------------------------- MQTT


class MqttPublisher:
    """Publishes notifications to ``serums/<hospital>/users/<user>/notifications/<kind>`` (QoS 1)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, prefix: str = "serums"):
        import paho.mqtt.client as mqtt

        self.prefix = prefix
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="")
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    @staticmethod
    def topic(prefix: str, n: Notification) -> str:
        return f"{prefix}/{n.hospital}/users/{n.user_id}/notifications/{n.kind}"

    def publish(self, notes: Iterable[Notification]) -> None:
        for n in notes:
            self.client.publish(self.topic(self.prefix, n), json.dumps(n.message()), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# --------------------------------------------------------------------------- the service


class NotificationService:
    """Follows the chain's events from the store's checkpoint; ``start()`` runs it in a thread,
    reconnecting after a failure; ``stop()`` ends it."""

    def __init__(self, services, store: NotificationStore, publisher: MqttPublisher | None = None,
                 retry_seconds: float = 2.0):
        self.services = services
        self.store = store
        self.publisher = publisher
        self.retry_seconds = retry_seconds
        self._stop = threading.Event()
        self._stream = None
        self._thread: threading.Thread | None = None
        self.handled = 0

    def _name_of(self, user_id: str) -> str:
        user = self.services.auth.get_user(user_id)
        return f"{user.username} ({V.ROLE_LABELS.get(user.role, user.role)}, {user.hospital})" if user else user_id

    def _hospital_of(self, msp: str) -> str:
        try:
            return self.services.hospital_of(msp)
        except Exception:  # noqa: BLE001 - an unknown hospital still gets a topic
            return msp or "unknown"

    def handle(self, event) -> list[Notification]:
        """One chaincode event: its notifications stored with the checkpoint, then published."""
        try:
            doc = event.json()
        except ValueError:
            doc = {}
        drafts = drafts_for(event.event_name, doc if isinstance(doc, dict) else {}, self._name_of,
                            self._hospital_of)
        notes = self.store.record(event.block_number, event.transaction_id, drafts)
        self.handled += 1
        if notes and self.publisher is not None:
            try:
                self.publisher.publish(notes)
            except Exception:  # noqa: BLE001 - the phone push is best effort; the store has it
                log.exception("could not publish %d notification(s) to MQTT", len(notes))
        return notes

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                network = self.services.service_gateway().network(self.services.network.channel)
                cp = self.store.checkpoint()
                if cp is None:
                    stream = network.chaincode_events(L.CHAINCODE, start_block=0)
                else:
                    stream = network.chaincode_events(L.CHAINCODE, start_block=cp[0], after_transaction_id=cp[1])
                self._stream = stream
                for event in stream:
                    if self._stop.is_set():
                        break
                    self.handle(event)
            except Exception:  # noqa: BLE001 - a dropped stream is resumed from the checkpoint
                if self._stop.is_set():
                    break
                log.warning("notification stream failed; resuming from the checkpoint", exc_info=True)
            self._stop.wait(self.retry_seconds)

    def start(self) -> NotificationService:
        self._thread = threading.Thread(target=self.run, name="serums-notifications", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._stream is not None:
            self._stream.close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.publisher is not None:
            self.publisher.close()


__all__ = ["KINDS", "Draft", "MqttPublisher", "Notification", "NotificationService", "NotificationStore",
           "drafts_for"]

