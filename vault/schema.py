"""Tables of the vault (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Layout (all tables prefixed ``vault_``):

- hubs, one table a T-P-O-L-E kind: ``hub_person``, ``hub_object``, ``hub_location``,
  ``hub_event``, ``hub_time``. Hash keys are keyed HMACs of the business key (see keys.py), so
  a stolen database cannot be searched for a known CHI. Patient-scoped business keys (the CHI,
  episode ids) are stored only encrypted under the patient's data key; reference data (codes,
  drugs, places, days) is stored in clear.
- ``links``: binary links from a driving hub (person or event) to another hub, in a section.
  Insert-only; for a (from hub, link name) the latest row is effective, ``to_hk`` NULL ends it.
- ``satellites``: one row a version of a satellite: load timestamp, record source, keyed hash
  diff and the AES-256-GCM sealed payload. Insert-only; reads pick the latest version per
  (hub, satellite) at or before the requested time.
- key material: ``meta`` (KEK id and KDF parameters), ``system_keys`` (the index key, wrapped),
  ``data_keys`` (one wrapped data key a patient), ``erasures`` (what was destroyed, when).
- ``batches`` (one row an ingest), ``blobs`` (content-addressed encrypted blobs' metadata).

Timestamps are stored through ``UTCDateTime``: always aware UTC in Python, ``timestamptz`` on
PostgreSQL and naive-UTC text on SQLite, microseconds preserved (payload associated data
includes the load timestamp, so it must round-trip exactly).
"""

from __future__ import annotations

import datetime as _dt

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

HK = sa.String(32)  # hash keys: 128-bit keyed HMAC, hex
DEK_ID = sa.String(32)


class UTCDateTime(TypeDecorator):
    """A datetime that is always timezone-aware UTC on the Python side."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: _dt.datetime | None, dialect) -> _dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the vault; use timezone-aware UTC")
        value = value.astimezone(_dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: _dt.datetime | None, dialect) -> _dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=_dt.UTC)
        return value.astimezone(_dt.UTC)


metadata = sa.MetaData()

meta = sa.Table(
    "vault_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

system_keys = sa.Table(
    "vault_system_keys", metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("kek_id", sa.String(16), nullable=False),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
)

data_keys = sa.Table(
    "vault_data_keys", metadata,
    sa.Column("dek_id", DEK_ID, primary_key=True),
    sa.Column("person_hk", HK, nullable=False, unique=True),
    sa.Column("kek_id", sa.String(16), nullable=False),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("fingerprint", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

erasures = sa.Table(
    "vault_erasures", metadata,
    sa.Column("dek_id", DEK_ID, primary_key=True),
    sa.Column("fingerprint", sa.String(32), nullable=False),
    sa.Column("erased_at", UTCDateTime, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("satellites", sa.Integer, nullable=False),
    sa.Column("blobs", sa.Integer, nullable=False),
    sa.Column("report_digest", sa.String(64), nullable=True),
)

batches = sa.Table(
    "vault_batches", metadata,
    sa.Column("batch_id", sa.String(32), primary_key=True),
    sa.Column("load_ts", UTCDateTime, nullable=False),
    sa.Column("format", sa.String(64), nullable=False),
    sa.Column("tables", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("satellites", sa.Integer, nullable=False),
    sa.Column("links", sa.Integer, nullable=False),
    sa.Column("hubs", sa.Integer, nullable=False),
)


def _hub_common() -> list[sa.Column]:
    return [
        sa.Column("load_ts", UTCDateTime, nullable=False),
        sa.Column("record_source", sa.String(128), nullable=False),
        sa.Column("batch_id", sa.String(32), nullable=False),
    ]


hub_person = sa.Table(
    "vault_hub_person", metadata,
    sa.Column("hk", HK, primary_key=True),
    sa.Column("dek_id", DEK_ID, nullable=False),
    sa.Column("bk_sealed", sa.LargeBinary, nullable=False),
    *_hub_common(),
)

hub_event = sa.Table(
    "vault_hub_event", metadata,
    sa.Column("hk", HK, primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("patient_hk", HK, nullable=False, index=True),
    sa.Column("dek_id", DEK_ID, nullable=False),
    sa.Column("bk_sealed", sa.LargeBinary, nullable=False),
    *_hub_common(),
)

hub_object = sa.Table(
    "vault_hub_object", metadata,
    sa.Column("hk", HK, primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("system", sa.String(255), nullable=True),
    sa.Column("code", sa.String(255), nullable=False),
    *_hub_common(),
)

hub_location = sa.Table(
    "vault_hub_location", metadata,
    sa.Column("hk", HK, primary_key=True),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("name", sa.String(255), nullable=True),
    sa.Column("latitude", sa.Float, nullable=True),
    sa.Column("longitude", sa.Float, nullable=True),
    sa.Column("altitude", sa.Float, nullable=True),
    *_hub_common(),
)

hub_time = sa.Table(
    "vault_hub_time", metadata,
    sa.Column("hk", HK, primary_key=True),
    sa.Column("instant", UTCDateTime, nullable=False),
    sa.Column("grain", sa.String(8), nullable=False),
    *_hub_common(),
)

HUB_TABLES: dict[str, sa.Table] = {
    "person": hub_person, "event": hub_event, "object": hub_object, "location": hub_location, "time": hub_time,
}

links = sa.Table(
    "vault_links", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("hk", HK, nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("section", sa.String(64), nullable=False),
    sa.Column("patient_hk", HK, nullable=False),
    sa.Column("from_kind", sa.String(8), nullable=False),
    sa.Column("from_hk", HK, nullable=False),
    sa.Column("to_kind", sa.String(8), nullable=False),
    sa.Column("to_hk", HK, nullable=True),
    *_hub_common(),
    sa.Index("ix_vault_links_patient", "patient_hk", "load_ts"),
)

satellites = sa.Table(
    "vault_satellites", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("hub_kind", sa.String(8), nullable=False),
    sa.Column("hub_hk", HK, nullable=False),
    sa.Column("satellite", sa.String(128), nullable=False),
    sa.Column("section", sa.String(64), nullable=False),
    sa.Column("dek_id", DEK_ID, nullable=False),
    sa.Column("load_ts", UTCDateTime, nullable=False),
    sa.Column("record_source", sa.String(128), nullable=False),
    sa.Column("hash_diff", sa.String(64), nullable=False),
    sa.Column("batch_id", sa.String(32), nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.Index("ix_vault_satellites_dek", "dek_id", "load_ts"),
)

blobs = sa.Table(
    "vault_blobs", metadata,
    sa.Column("blob_id", sa.String(32), primary_key=True),
    sa.Column("dek_id", DEK_ID, nullable=False, index=True),
    sa.Column("section", sa.String(64), nullable=False),
    sa.Column("store", sa.String(16), nullable=False),
    sa.Column("address", sa.String(128), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("load_ts", UTCDateTime, nullable=False),
    sa.Column("meta_sealed", sa.LargeBinary, nullable=False),
)

SCHEMA_VERSION = "1"
