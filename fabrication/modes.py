"""Modes beyond fabricating from a project (SERUMS D4.2 §2): *move/transform* a real table into a
target applying masking rules (optionally mixed with fabricated rows), and *inflate* an existing
database table with fabricated rows consistent with the rows already there."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from .masking import MaskingError, mask_frame


def move(source: str, target: str, rules: Mapping[str, Any], key: bytes, *, table: str | None = None,
         fabricated: pd.DataFrame | None = None) -> str:
    """Move/transform mode: read a real table, apply the masking rules, write it to ``target`` (any
    output ``open_target`` takes). With ``fabricated`` rows the target gets both (mixed mode), with
    a ``source`` column saying which is which."""
    from .sources import read_table
    from .writers import open_target

    real = read_table(source, table)
    masked = mask_frame(real, rules, key)
    name = table or "masked"
    if fabricated is not None:
        masked = pd.concat([masked.assign(source="real"), fabricated.assign(source="fabricated")], ignore_index=True)
    return open_target(target).write({name: masked})


def inflate(url: str, table: str, rows: int, *, seed: int = 0) -> str:
    """Inflate mode: add ``rows`` fabricated rows to an existing database table, drawn from a profile
    of the rows already there (so they are consistent with them) and keyed after them: a column of
    unique integers (the key) continues from its maximum. One table at a time (rows of other tables
    that reference it are not added)."""
    from .engine import fabricate
    from .model import compile_project
    from .profiler import column_names, profile
    from .sources import read_table
    from .writers import SqlWriter

    real = read_table(url, table)
    if rows < 1:
        raise MaskingError("inflate adds at least one row")
    key = next((c for c in real.columns if real[c].dtype.kind in "iu" and real[c].is_unique and real[c].notna().all()),
               None)
    body = real.drop(columns=[key]) if key else real
    names = column_names(body.columns)
    spec = profile(body, name=table, seed=seed)
    tname = next(iter(spec["tables"]))
    fake = fabricate(compile_project(spec, source=f"inflate {table}"), rows=rows, seed=seed).frame(tname)
    fake = fake.rename(columns={v: k for k, v in names.items()})[list(body.columns)]
    if key:
        start = int(real[key].max()) + 1
        fake.insert(list(real.columns).index(key), key, range(start, start + rows))
    SqlWriter(url, if_exists="append").write({table: fake})
    return f"{rows} fabricated row(s) added to {table} ({len(real)} before" + (f"; {key} from {start}" if key else "") + ")"
