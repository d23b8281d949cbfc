"""Output targets: CSV, JSON, XLSX, SQLite, PostgreSQL, MQTT streaming and the vault.

Every writer takes the finished tables as pandas frames (dates as ISO strings, categories as
labels, nulls as nulls) so each format sees exactly the same values. ``open_target`` turns a
``--out`` argument into a writer: a directory (CSV, or JSON with ``--format json``), ``x.xlsx``,
``x.sqlite``/``x.db``, ``postgresql+psycopg://…``, ``mqtt://host:port/topic``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd

log = logging.getLogger(__name__)


class OutputError(ValueError):
    """An output target that cannot be written (bad URL, unreachable broker, existing table…)."""


def records(df: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """Rows as plain-Python dicts (None for nulls), for JSON, MQTT and the vault."""
    cols = list(df.columns)
    for row in df.itertuples(index=False, name=None):
        out = {}
        for c, v in zip(cols, row, strict=True):
            if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
                out[c] = None
            elif hasattr(v, "item"):
                out[c] = v.item()
            else:
                out[c] = v
        yield out


class Writer(Protocol):
    def write(self, frames: dict[str, pd.DataFrame]) -> str:
        """Write every table; return a one-line description of where they went."""
        ...


@dataclass
class CsvWriter:
    directory: Path

    def write(self, frames):
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, df in frames.items():
            df.to_csv(self.directory / f"{name}.csv", index=False)
        return f"{len(frames)} CSV file(s) in {self.directory}"


@dataclass
class JsonWriter:
    """One JSON array per table (``<dir>/<table>.json``), or all tables in one ``x.json`` object."""

    path: Path

    def write(self, frames):
        if self.path.suffix == ".json":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w") as fh:
                json.dump({n: list(records(df)) for n, df in frames.items()}, fh)
            return f"{len(frames)} table(s) in {self.path}"
        self.path.mkdir(parents=True, exist_ok=True)
        for name, df in frames.items():
            with open(self.path / f"{name}.json", "w") as fh:
                json.dump(list(records(df)), fh)
        return f"{len(frames)} JSON file(s) in {self.path}"


@dataclass
class XmlWriter:
    """XML, one file per table (``<dir>/<table>.xml``, or ``x.xml`` for a single table; more tables
    beside it as ``x.<table>.xml``): ``<table><row><column>value</column>…</row>…</table>``, an empty
    element for a null. ``fabrication.sources`` reads it back."""

    path: Path

    def write(self, frames):
        if self.path.suffix.lower() == ".xml":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            targets = {n: self.path if len(frames) == 1 else self.path.with_suffix(f".{n}.xml") for n in frames}
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            targets = {n: self.path / f"{n}.xml" for n in frames}
        for name, df in frames.items():
            plain = pd.DataFrame(list(records(df)), columns=list(df.columns))
            plain.to_xml(targets[name], index=False, root_name=name, row_name="row", parser="etree")
        return f"{len(frames)} XML file(s): {', '.join(str(t) for t in targets.values())}"


@dataclass
class XlsxWriter:
    path: Path

    def write(self, frames):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        too_big = [n for n, df in frames.items() if len(df) > 1_048_575]
        if too_big:
            raise OutputError(f"XLSX sheets hold at most 1,048,575 rows; too many in {', '.join(too_big)}")
        with pd.ExcelWriter(self.path, engine="openpyxl") as xw:
            for name, df in frames.items():
                df.to_excel(xw, sheet_name=name[:31], index=False)
        return f"{len(frames)} sheet(s) in {self.path}"


@dataclass
class SqlWriter:
    """SQLite or PostgreSQL through SQLAlchemy; ``if_exists`` as in pandas (replace/append/fail)."""

    url: str
    schema: str | None = None
    if_exists: str = "replace"
    chunksize: int = 20_000

    def write(self, frames):
        import sqlalchemy as sa

        from .sources import sql_engine

        engine = sql_engine(self.url, OutputError)
        try:
            with engine.begin() as conn:
                if self.schema:
                    conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
                for name, df in frames.items():
                    df.to_sql(name, conn, schema=self.schema, if_exists=self.if_exists, index=False,
                              chunksize=self.chunksize, method="multi" if engine.dialect.name == "postgresql" else None)
        except ValueError as exc:
            raise OutputError(str(exc)) from None
        except sa.exc.OperationalError as exc:
            raise OutputError(f"cannot write to {engine.url.render_as_string(hide_password=True)}: "
                              f"{str(exc.orig).splitlines()[0]}") from None
        finally:
            engine.dispose()
        return f"{len(frames)} table(s) in {engine.url.render_as_string(hide_password=True)}" + (
            f" schema {self.schema}" if self.schema else "")


@dataclass
class MqttWriter:
    """Streams rows as JSON messages to ``<topic>/<table>`` (QoS 1), one message per row.

    Rows are published in order, table after table (parents first), so a subscriber can rebuild
    foreign keys as it goes; a final ``<topic>/_done`` message carries the row counts. ``write``
    connects, publishes and says done; a stream holds one connection (``with writer:``) and calls
    ``publish`` per batch of frames, ``done`` at its end."""

    host: str = "127.0.0.1"
    port: int = 1883
    topic: str = "serums/fabrication"
    qos: int = 1
    client_id: str = ""

    def __post_init__(self) -> None:
        self._client = None
        self._last = None

    def __enter__(self) -> MqttWriter:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id)
        try:
            client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise OutputError(f"cannot reach the MQTT broker at {self.host}:{self.port}: {exc}") from None
        client.loop_start()
        self._client = client
        return self

    def __exit__(self, *exc) -> None:
        if self._client is not None:
            if self._last is not None:
                self._last.wait_for_publish(timeout=60)
            self._client.loop_stop()
            self._client.disconnect()
            self._client = None

    def publish(self, frames: dict[str, pd.DataFrame]) -> dict[str, int]:
        """Publish every row of ``frames`` (connected with ``with writer:``); rows per table."""
        counts = {}
        for name, df in frames.items():
            n = 0
            for rec in records(df):
                self._last = self._client.publish(f"{self.topic}/{name}", json.dumps(rec), qos=self.qos)
                n += 1
            counts[name] = n
        return counts

    def done(self, counts: dict[str, int]) -> None:
        self._last = self._client.publish(f"{self.topic}/_done", json.dumps(counts), qos=self.qos)

    def write(self, frames):
        with self:
            counts = self.publish(frames)
            self.done(counts)
        return f"{sum(counts.values())} row(s) published to mqtt://{self.host}:{self.port}/{self.topic}/<table>"


@runtime_checkable
class VaultSink(Protocol):
    """What the vault must offer to receive fabricated tables.

    ``ingest`` is called once per table, parents first, with the table name (one of the project's
    tables, e.g. ``patients``, ``ndc_smr01``) and its rows as plain dicts (ISO date strings, labels,
    None for nulls). The vault maps tables and columns to its hubs, links and satellites."""

    def ingest(self, table_name: str, rows: Iterable[dict[str, Any]]) -> Any: ...


@dataclass
class VaultWriter:
    sink: VaultSink | Any

    def write(self, frames):
        ingest = getattr(self.sink, "ingest", None)
        if ingest is None and callable(self.sink):
            ingest = self.sink
        if ingest is None:
            raise OutputError("the vault target needs an object with ingest(table_name, rows) or a callable")
        total = 0
        for name, df in frames.items():
            rows = list(records(df))
            ingest(name, rows)
            total += len(rows)
        return f"{total} row(s) in {len(frames)} table(s) handed to the vault"


def open_target(out: str, fmt: str | None = None, schema: str | None = None, if_exists: str = "replace",
                sink: VaultSink | None = None) -> Writer:
    """A writer for a ``--out`` value (format from ``fmt`` or from the value's shape)."""
    low = out.lower()
    if fmt == "vault" or low == "vault":
        if sink is None:
            raise OutputError("the vault target is bound by the caller (serums up), not from the command line")
        return VaultWriter(sink)
    if low.startswith(("postgresql", "postgres://", "sqlite:")) or fmt in ("postgresql", "sqlite") and "://" in out:
        return SqlWriter(out.replace("postgres://", "postgresql+psycopg://", 1), schema=schema, if_exists=if_exists)
    if fmt == "xml" or low.endswith(".xml"):
        return XmlWriter(Path(out))
    if "://" in out and not low.startswith("mqtt://") and fmt in (None, "sql"):
        # any other SQLAlchemy URL (oracle+oracledb://, db2+ibm_db://, mysql+pymysql://, …): written by
        # SQLAlchemy when its driver is installed, otherwise a clear error — never a directory of CSV
        from .sources import sql_engine

        sql_engine(out, OutputError).dispose()
        return SqlWriter(out, schema=schema, if_exists=if_exists)
    if low.startswith("mqtt://") or fmt == "mqtt":
        from urllib.parse import urlparse

        u = urlparse(out if "://" in out else f"mqtt://{out}")
        return MqttWriter(u.hostname or "127.0.0.1", u.port or 1883, (u.path or "/serums/fabrication").strip("/")
                          or "serums/fabrication")
    p = Path(out)
    if fmt == "xlsx" or p.suffix.lower() == ".xlsx":
        return XlsxWriter(p)
    if fmt == "sqlite" or p.suffix.lower() in (".sqlite", ".db", ".sqlite3"):
        return SqlWriter(f"sqlite:///{p.resolve()}", if_exists=if_exists)
    if fmt == "json" or p.suffix.lower() == ".json":
        return JsonWriter(p)
    if fmt not in (None, "csv"):
        raise OutputError(f"unknown output format {fmt!r} (csv, json, xml, xlsx, sqlite, postgresql, mqtt)")
    if p.suffix and p.suffix.lower() != ".csv" and not p.is_dir():
        raise OutputError(f"cannot tell the format of {out!r}: give a directory (CSV), .json, .xml, .xlsx, .sqlite, "
                          "a postgresql:// URL or mqtt://host:port/topic")
    return CsvWriter(p)


def writers_from_project(outputs, base_dir: Path | None = None) -> list[Writer]:
    """The project's own ``outputs:`` list (used when no --out is given)."""
    out: list[Writer] = []
    for o in outputs:
        target = o.url or o.path
        if o.kind == "mqtt":
            target = o.url or "mqtt://127.0.0.1:1883/" + (o.topic or "serums/fabrication")
        if target is None:
            raise OutputError(f"output {o.kind} needs a path or url")
        if o.kind in ("csv", "json", "xlsx", "sqlite") and base_dir is not None and not Path(target).is_absolute():
            target = str(base_dir / target)
        if o.kind == "vault":
            continue
        out.append(open_target(target, o.kind if o.kind != "postgresql" else None, schema=o.schema_,
                               if_exists=o.if_exists))
    return out
