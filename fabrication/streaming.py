"""Streaming mode: an MQTT topic in, masked or fabricated rows out, message by message.

    report = stream("mqtt://127.0.0.1:1883/hospital/in/#", "mqtt://127.0.0.1:1883/serums/masked",
                    rules={"given_name": {"substitute": "given_names", "sex": "sex"}, "chi": "fpe"}, key=key,
                    count=1000)

Each message (a JSON object or an array of objects) is handled as it arrives:

- **mask** (``rules`` + ``key``): its rows get the masking rules (``masking.mask_frame``; a rule for a
  column the message does not carry is skipped) and go out under the table named by the topic's last
  level (``hospital/in/patients`` → ``patients``);
- **fabricate** (``project``): the message asks for fabricated data — ``{"rows": 3}`` (default 1
  root row, optional ``seed``) — and every output table of that many root rows goes out.

Out is any ``open_target`` value: an MQTT topic gets each row at once (``<topic>/<table>``, and
``<topic>/_done`` with the counts when the stream ends); a database gets rows appended every
``flush_rows`` rows; files are written when the stream ends. The stream runs until ``count``
messages, ``seconds``, ``idle`` quiet seconds, ``stop`` (a ``threading.Event``) or Ctrl-C. A message
that is not JSON or cannot be masked is counted and skipped (the report names the first), never
the end of the stream.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .masking import mask_frame, validate_rules
from .sources import InputError, mqtt_messages, mqtt_url
from .writers import MqttWriter, SqlWriter, open_target


@dataclass
class StreamReport:
    messages: int = 0
    rows_in: int = 0
    rows_out: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    first_problem: str = ""
    seconds: float = 0.0
    stopped_by: str = ""
    written: str = ""

    def summary(self) -> str:
        out = ", ".join(f"{t} {n}" for t, n in self.rows_out.items()) or "none"
        text = (f"{self.messages} message(s) in {self.seconds:.1f} s ({self.rows_in} row(s)); rows out: {out}; "
                f"stopped by {self.stopped_by}")
        if self.rejected:
            text += f"; {self.rejected} message(s) skipped (first: {self.first_problem})"
        return text + (f"; {self.written}" if self.written else "")


class _Out:
    """Where handled rows go: published at once (MQTT), appended in batches (SQL) or kept for the end."""

    def __init__(self, target: str, flush_rows: int):
        writer = open_target(target)
        self.writer = SqlWriter(writer.url, writer.schema, "append") if isinstance(writer, SqlWriter) else writer
        self.flush_rows = flush_rows
        self.pending: dict[str, list[pd.DataFrame]] = {}
        self.counts: dict[str, int] = {}
        self.written = ""

    def __enter__(self) -> _Out:
        if isinstance(self.writer, MqttWriter):
            self.writer.__enter__()
        return self

    def send(self, frames: dict[str, pd.DataFrame]) -> None:
        for t, df in frames.items():
            self.counts[t] = self.counts.get(t, 0) + len(df)
        if isinstance(self.writer, MqttWriter):
            self.writer.publish(frames)
            return
        for t, df in frames.items():
            self.pending.setdefault(t, []).append(df)
        if isinstance(self.writer, SqlWriter) and sum(len(d) for v in self.pending.values() for d in v) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.written = self.writer.write({t: pd.concat(v, ignore_index=True) for t, v in self.pending.items()})
            self.pending = {}

    def __exit__(self, *exc) -> None:
        if isinstance(self.writer, MqttWriter):
            self.writer.done(self.counts)
            self.writer.__exit__(*exc)
            host, port = self.writer.host, self.writer.port
            self.written = f"published to mqtt://{host}:{port}/{self.writer.topic}/<table>"
        else:
            self.flush()


def _rows(payload: bytes) -> list[dict[str, Any]]:
    try:
        obj = json.loads(payload)
    except ValueError:
        raise InputError(f"not JSON: {payload[:40].decode(errors='replace')!r}") from None
    rows = obj if isinstance(obj, list) else [obj]
    if not all(isinstance(r, dict) for r in rows):
        raise InputError("not a JSON object or an array of objects")
    return rows


def stream(source: str, target: str, *, rules: Mapping[str, Any] | None = None, key: bytes | None = None,
           project: Any = None, seed: int = 0, count: int | None = None, seconds: float | None = None,
           idle: float | None = None, stop: threading.Event | None = None, ready: threading.Event | None = None,
           flush_rows: int = 500) -> StreamReport:
    """Mask (``rules``, ``key``) or fabricate (``project``: a compiled project) for every message on
    the MQTT topic ``source``, sending the rows to ``target``; see the module's description. ``ready``
    is set once the subscription is in place."""
    from .engine import fabricate

    if (rules is None) == (project is None):
        raise InputError("a stream either masks (masking rules) or fabricates (a project), one of the two")
    if not source.lower().startswith("mqtt://"):
        raise InputError(f"a stream reads an MQTT topic (mqtt://host:port/topic), not {source!r}")
    if rules is not None:
        if key is None:
            raise InputError("masking a stream needs the masking key")
        validate_rules(rules)
    prefix = mqtt_url(source)[2].rstrip("#+/")
    report = StreamReport()
    t0 = time.monotonic()
    with _Out(target, flush_rows) as out:
        try:
            for topic, payload in mqtt_messages(source, seconds=seconds, idle=idle, stop=stop, ready=ready):
                report.messages += 1
                try:
                    rows = _rows(payload)
                    report.rows_in += len(rows)
                    if rules is not None:
                        df = pd.DataFrame(rows)
                        table = topic[len(prefix):].strip("/").rsplit("/", 1)[-1] or "masked"
                        frames = {table: mask_frame(df, {c: r for c, r in rules.items() if c in df.columns}, key)}
                    else:
                        ask = rows[0] if rows else {}
                        n = int(ask.get("rows", 1))
                        if not 1 <= n <= 100_000:
                            raise InputError(f"rows must be 1 to 100000, not {n}")
                        frames = fabricate(project, rows=n, seed=int(ask.get("seed", seed + report.messages))).frames()
                    out.send(frames)
                except (ValueError, TypeError) as exc:  # InputError, MaskingError, a fabrication error
                    report.rejected += 1
                    report.first_problem = report.first_problem or f"message {report.messages} on {topic}: {exc}"
                if count is not None and report.messages >= count:
                    report.stopped_by = f"count ({count} messages)"
                    break
        except KeyboardInterrupt:
            report.stopped_by = "Ctrl-C"
    report.seconds = time.monotonic() - t0
    report.stopped_by = report.stopped_by or (
        "stop" if stop is not None and stop.is_set()
        else f"time ({seconds:g} s)" if seconds is not None and report.seconds >= seconds
        else f"idle ({idle:g} s quiet)")
    report.rows_out, report.written = out.counts, out.written
    return report
