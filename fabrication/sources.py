"""Where real data comes from, for ``profile``, ``verify`` and ``privacy``: files (CSV, JSON, XLSX,
XML), databases by SQLAlchemy URL (SQLite, PostgreSQL; Oracle, DB2, MySQL, SQL Server when their
driver is installed), an MQTT topic (one JSON object per message), and the public tables shipped by
installed packages (``sklearn:breast_cancer``, ``lifelines:gbsg2``, ``sksurv:flchain`` …).

    read_table("real.csv")
    read_table("postgresql+psycopg://postgres@127.0.0.1/test", table="patients")
    read_table("mqtt://127.0.0.1:1883/serums/in?count=500&timeout=10")
    read_database("sqlite:///h.sqlite")   # every table, with declared primary and foreign keys
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pandas as pd


class InputError(ValueError):
    """A data source that cannot be read; the message says why (one line)."""

    slug, status, title = "fabrication-input", 422, "Data source cannot be read"

    @property
    def detail(self) -> str:
        return str(self)


#: SQLAlchemy dialect → the package that provides its driver (for the error message)
DRIVERS = {"oracle": "oracledb", "db2": "ibm_db_sa", "ibm_db_sa": "ibm_db_sa", "mssql": "pyodbc", "mysql": "pymysql",
           "mariadb": "pymysql", "postgresql": "psycopg"}


def sql_engine(url: str, error: type[ValueError] = InputError):
    """A SQLAlchemy engine for ``url``; a missing dialect or driver is a clear ``error`` naming the
    package to install (never a traceback, never a silent fallback)."""
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    dialect = url.split("://", 1)[0].split("+", 1)[0].lower()
    try:
        return sa.create_engine(url)
    except NoSuchModuleError:
        pkg = DRIVERS.get(dialect)
        raise error(f"{dialect}:// databases need the SQLAlchemy dialect from the Python package "
                    f"{pkg or dialect!r}, which is not installed" + (f" (pip install {pkg})" if pkg else "")) from None
    except ImportError as exc:
        raise error(f"{url.split('://', 1)[0]}:// needs the database driver {exc.name or DRIVERS.get(dialect)!r}, "
                    f"which is not installed (pip install {exc.name or DRIVERS.get(dialect)})") from None
    except ArgumentError as exc:
        raise error(f"bad database URL {url!r}: {exc}") from None


def _packaged(name: str) -> pd.DataFrame | None:
    def category_to_object(df: pd.DataFrame) -> pd.DataFrame:
        for c in df.columns:
            if isinstance(df[c].dtype, pd.CategoricalDtype):
                df[c] = df[c].astype(object)
        return df

    if name in ("sklearn:breast_cancer", "breast_cancer"):
        from sklearn.datasets import load_breast_cancer

        return load_breast_cancer(as_frame=True).frame
    if name in ("lifelines:gbsg2", "gbsg2"):
        from lifelines.datasets import load_gbsg2

        return load_gbsg2()
    if name == "lifelines:lung":
        from lifelines.datasets import load_lung

        return load_lung()
    if name.startswith("sksurv:"):
        try:
            from sksurv import datasets
        except ImportError:
            raise InputError(f"{name} needs scikit-survival (pip install scikit-survival)") from None
        loader = getattr(datasets, f"load_{name.split(':', 1)[1]}", None)
        if loader is None:
            raise InputError(f"no table {name!r} in scikit-survival")
        x, y = loader()
        df = x.copy()
        for field in y.dtype.names:  # the outcome (event, time) as ordinary columns
            df[field] = y[field]
        return category_to_object(df)
    return None


def mqtt_url(url: str) -> tuple[str, int, str, dict[str, list[str]]]:
    """(host, port, topic, query) of ``mqtt://host:port/topic?…`` (the topic may hold ``+``/``#``)."""
    rest, _, query = url.split("://", 1)[-1].partition("?")  # not urlparse: '#' is the multi-level wildcard
    netloc, _, topic = rest.partition("/")
    u = urlparse(f"mqtt://{netloc}")
    return u.hostname or "127.0.0.1", u.port or 1883, unquote(topic) or "serums/fabrication", parse_qs(query)


def mqtt_messages(url: str, *, seconds: float | None = None, idle: float | None = None,
                  stop: threading.Event | None = None, ready: threading.Event | None = None
                  ) -> Iterator[tuple[str, bytes]]:
    """``(topic, payload)`` of every message on the URL's topic as it arrives (QoS 1), until the
    caller stops iterating, ``seconds`` have passed, the topic has been quiet for ``idle`` seconds
    or ``stop`` is set. ``ready`` is set once the broker confirmed the subscription."""
    import paho.mqtt.client as mqtt

    host, port, topic, _ = mqtt_url(url)
    inbox: queue.Queue = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, msg: inbox.put((msg.topic, msg.payload))
    client.on_subscribe = lambda *_a: subscribed.set()
    client.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
    try:
        client.connect(host, port)
    except OSError as exc:
        raise InputError(f"cannot reach the MQTT broker at {host}:{port}: {exc.strerror or exc}") from None
    client.loop_start()
    try:
        if not subscribed.wait(10):
            raise InputError(f"the MQTT broker at {host}:{port} did not confirm the subscription to {topic!r}")
        if ready is not None:
            ready.set()
        end = None if seconds is None else time.monotonic() + seconds
        quiet_since = time.monotonic()
        while not (stop is not None and stop.is_set()):
            now = time.monotonic()
            if (end is not None and now >= end) or (idle is not None and now - quiet_since >= idle):
                return
            try:
                item = inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            quiet_since = time.monotonic()
            yield item
    finally:
        client.loop_stop()
        client.disconnect()


def _mqtt(url: str) -> pd.DataFrame:
    """Subscribe to the topic and collect JSON messages until ``count`` rows arrived or the topic has
    been quiet for ``timeout`` seconds."""
    _, _, topic, q = mqtt_url(url)
    count = int(q.get("count", ["0"])[0]) or None
    timeout = float(q.get("timeout", ["5"])[0])
    rows: list[dict] = []
    bad: list[str] = []
    for _topic, payload in mqtt_messages(url, idle=timeout):
        try:
            obj = json.loads(payload)
        except ValueError:
            bad.append(payload[:40].decode(errors="replace"))
            continue
        rows.extend(obj if isinstance(obj, list) else [obj])
        if count is not None and len(rows) >= count:
            break
    if bad and not rows:
        raise InputError(f"messages on {topic!r} are not JSON (first: {bad[0]!r})")
    if not rows:
        raise InputError(f"no message on {topic!r} within {timeout:g} s")
    return pd.DataFrame(rows[:count] if count else rows)


def read_table(source: str, table: str | None = None) -> pd.DataFrame:
    """One table of real data from a file, a database URL, an MQTT topic or a packaged data set."""
    df = _packaged(source)
    if df is not None:
        return df
    low = source.lower()
    if low.startswith("mqtt://"):
        return _mqtt(source)
    if "://" in source:
        return _sql(source, table)
    p = Path(source)
    if not p.exists():
        raise InputError(f"no such file: {source} (CSV, JSON, XLSX, XML, SQLite, a database URL, mqtt://… "
                         "or sklearn:breast_cancer / lifelines:gbsg2 / lifelines:lung / sksurv:flchain …)")
    suffix = p.suffix.lower()
    try:
        if suffix == ".xlsx":
            return pd.read_excel(p)
        if suffix == ".json":
            return pd.read_json(p)
        if suffix == ".xml":
            return pd.read_xml(p, parser="etree")
        if suffix in (".sqlite", ".db", ".sqlite3"):
            return _sql(f"sqlite:///{p.resolve()}", table)
        return pd.read_csv(p)
    except (ValueError, OSError) as exc:
        raise InputError(f"cannot read {source}: {str(exc).splitlines()[0]}") from None


def _sql(url: str, table: str | None) -> pd.DataFrame:
    import sqlalchemy as sa

    engine = sql_engine(url)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        names = sa.inspect(engine).get_table_names()
        if table is None:
            if len(names) != 1:
                raise InputError(f"{shown} holds {len(names)} tables; name one with --table "
                                 f"({', '.join(names[:20]) or 'none'})")
            table = names[0]
        if table not in names:
            raise InputError(f"no table {table!r} in {shown} (tables: {', '.join(names[:20]) or 'none'})")
        return pd.read_sql_table(table, engine)
    except sa.exc.OperationalError as exc:
        raise InputError(f"cannot read {shown}: {str(exc.orig).splitlines()[0]}") from None
    finally:
        engine.dispose()


@dataclass
class Database:
    """Every table of a database with the keys its schema declares: ``primary_keys`` (table → its
    key columns) and ``foreign_keys`` (``(table, column, parent table, parent column)``, single-column
    constraints only)."""

    frames: dict[str, pd.DataFrame]
    primary_keys: dict[str, list[str]] = field(default_factory=dict)
    foreign_keys: list[tuple[str, str, str, str]] = field(default_factory=list)


def read_database(url: str, schema: str | None = None) -> Database:
    """All tables of a database (SQLAlchemy URL; ``schema`` for PostgreSQL) and its declared keys."""
    import sqlalchemy as sa

    engine = sql_engine(url)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        insp = sa.inspect(engine)
        names = insp.get_table_names(schema=schema)
        if not names:
            raise InputError(f"no table in {shown}" + (f" schema {schema}" if schema else ""))
        db = Database({t: pd.read_sql_table(t, engine, schema=schema) for t in names})
        for t in names:
            db.primary_keys[t] = list(insp.get_pk_constraint(t, schema=schema).get("constrained_columns") or [])
            for fk in insp.get_foreign_keys(t, schema=schema):
                if len(fk["constrained_columns"]) == 1 and fk["referred_table"] in db.frames:
                    db.foreign_keys.append((t, fk["constrained_columns"][0], fk["referred_table"],
                                            fk["referred_columns"][0]))
        return db
    except sa.exc.OperationalError as exc:
        raise InputError(f"cannot read {shown}: {str(exc.orig).splitlines()[0]}") from None
    finally:
        engine.dispose()
