"""Modes beyond fabricating from a project (SERUMS D4.2 §2): *move/transform* a real table into a
target applying masking rules (optionally mixed with fabricated rows), and *inflate* an existing
database — a table and the tables that refer to it — with fabricated rows consistent with the rows
and keys already there."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .masking import mask_frame
from .sources import Database, InputError, read_database


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


@dataclass(frozen=True)
class Relation:
    """``child.column`` holds keys of ``parent.key``."""

    child: str
    column: str
    parent: str
    key: str


_PREFIXED = re.compile(r"^(.*?)(\d+)$")


def _key_kind(s: pd.Series) -> str | None:
    """``int`` or ``prefixed`` (one prefix + digits, such as ``T0000042``) when ``s`` can be a key
    that new rows continue; None otherwise."""
    if len(s) == 0 or s.isna().any() or not s.is_unique:
        return None
    if s.dtype.kind in "iu":
        return "int"
    if s.dtype == object:
        parts = s.astype(str).str.extract(_PREFIXED)
        if parts[0].notna().all() and parts[0].nunique() == 1:
            return "prefixed"
    return None


def _continue_keys(s: pd.Series, n: int) -> list:
    """``n`` new keys after the largest of ``s`` (integers, or one prefix and zero-padded digits)."""
    if _key_kind(s) == "int":
        start = int(s.max()) + 1
        return list(range(start, start + n))
    parts = s.astype(str).str.extract(_PREFIXED)
    prefix, width, start = parts[0].iloc[0], parts[1].str.len().max(), parts[1].astype(int).max() + 1
    return [f"{prefix}{i:0{width}d}" for i in range(start, start + n)]


def database_keys(db: Database) -> tuple[dict[str, str], list[Relation]]:
    """Each table's single key column and the relations between the tables: what the schema declares,
    otherwise inferred — a key is a unique, complete column of integers (or of one prefix and digits
    when its name ends in ``id``/``key`` or another table refers to it); a relation is a column that
    has a key's name (``patient_id``, or ``<table>_<key>``) and only values of that key."""
    keys: dict[str, str] = {}
    for t, df in db.frames.items():
        declared = db.primary_keys.get(t) or []
        if len(declared) == 1:
            keys[t] = declared[0]
        elif not declared:
            named = [c for c in df.columns if str(c).lower().endswith(("id", "key")) and _key_kind(df[c])]
            ints = [c for c in df.columns if _key_kind(df[c]) == "int"]
            if named or ints:
                keys[t] = (named or ints)[0]
    rels = [Relation(*fk) for fk in db.foreign_keys]
    declared_cols = {(r.child, r.column) for r in rels}
    for child, df in db.frames.items():
        for col in df.columns:
            if (child, col) in declared_cols or col == keys.get(child):
                continue
            values = df[col].dropna()
            for parent, key in keys.items():
                pdf = db.frames[parent]
                names = {key, f"{parent}_{key}", f"{parent.rstrip('s')}_{key}"}
                if parent != child and col in names and len(values) and values.isin(pdf[key]).all():
                    rels.append(Relation(child, col, parent, key))
                    break
    return keys, rels


def _descendants(table: str, rels: list[Relation]) -> set[str]:
    out: set[str] = set()
    todo = [table]
    while todo:
        t = todo.pop()
        for r in rels:
            if r.parent == t and r.child not in out and r.child != table:
                out.add(r.child)
                todo.append(r.child)
    return out


def _parents_first(tables: list[str], rels: list[Relation]) -> list[str]:
    order: list[str] = []
    pending = list(tables)
    while pending:
        ready = [t for t in pending
                 if not any(r.child == t and r.parent in pending and r.parent != t for r in rels)] or pending[:1]
        order += ready
        pending = [t for t in pending if t not in ready]
    return order


def _fabricate_like(real: pd.DataFrame, rows: int, name: str, seed: int) -> pd.DataFrame:
    """``rows`` rows drawn from a profile of ``real`` (no real row copied), under the real column names."""
    from .engine import fabricate
    from .model import compile_project
    from .profiler import column_names, profile

    if real.shape[1] == 0:
        return pd.DataFrame(index=range(rows))
    names = column_names(real.columns)
    spec = profile(real, name=name, seed=seed)
    tname = next(iter(spec["tables"]))
    fake = fabricate(compile_project(spec, source=f"inflate {name}"), rows=rows, seed=seed).frame(tname)
    return fake.rename(columns={v: k for k, v in names.items()})[list(real.columns)]


def _composite_key(fake: pd.DataFrame, real: pd.DataFrame, pk: list[str], refs: set[str]) -> pd.DataFrame:
    """New rows under a declared composite key stay unique: an integer key column that is not a
    reference numbers the rows of each referenced group on from the group's largest value (1, 2, …
    under a new parent, as a cycle number is); rows whose key would still repeat are left out."""
    if len(pk) < 2:
        return fake
    group = [c for c in pk if c in refs]
    for c in pk:
        if c in refs or not pd.api.types.is_integer_dtype(real[c]):
            continue
        if group:
            last = real.groupby(group)[c].max().rename("_last").reset_index()
            start = pd.to_numeric(fake[group].astype(object).merge(last.astype(object), how="left", on=group)["_last"])
            start = start.fillna(real[c].min() - 1).to_numpy(dtype=np.int64) + 1
            fake[c] = start + fake.groupby(group).cumcount().to_numpy()
        else:
            fake[c] = int(real[c].max()) + 1 + np.arange(len(fake))
    fake = fake.drop_duplicates(pk)
    seen = fake[pk].astype(object).merge(real[pk].astype(object).drop_duplicates(), how="left", on=pk, indicator=True)
    return fake[(seen["_merge"] == "left_only").to_numpy()].reset_index(drop=True)


def inflate(url: str, table: str, rows: int, *, seed: int = 0, schema: str | None = None,
            children: bool = True) -> str:
    """Inflate mode: add ``rows`` fabricated rows to ``table`` of an existing database and, with
    ``children``, rows of the tables that refer to it, so that the database stays consistent.

    Keys and relations are the schema's (or inferred: ``database_keys``). Each table's non-key columns
    are drawn from a profile of its rows (none copied); a key continues after its largest value
    (integers, or a prefix and zero-padded digits). The new rows of ``table`` refer to existing rows of
    its own parents (as often as the real rows do); each new row gets children as the real ones have
    them — a count drawn from the real rows' children per parent, capped at the 5th largest count so no
    single real parent is described — and so on down (grandchildren of the new children). A child
    that refers to two of the grown tables is grown under the lower one and takes the other key
    from the new rows above it. Under a declared composite key (a cycle number within a treatment) an
    integer key column is numbered on within each referenced row. Everything is appended in one
    transaction, parents first."""
    from .writers import SqlWriter

    if rows < 1:
        raise InputError("inflate adds at least one row")
    db = read_database(url, schema)
    if table not in db.frames:
        raise InputError(f"no table {table!r} in the database (tables: {', '.join(sorted(db.frames))})")
    keys, rels = database_keys(db)
    rng = np.random.default_rng(seed)
    new: dict[str, list[pd.DataFrame]] = {}

    def grow(t: str, n: int, ancestors: pd.DataFrame | None = None) -> None:
        """``n`` new rows of ``t``; ``ancestors`` (one row per new row) holds the keys of the new rows
        above them, as ``table.column`` columns, which their references take."""
        real, key = db.frames[t], keys.get(t)
        mine = [r for r in rels if r.child == t]
        fk_cols = {r.column for r in mine}
        fake = _fabricate_like(real[[c for c in real.columns if c != key and c not in fk_cols]], n, t,
                               seed + len(new.get(t, [])))
        ctx = pd.DataFrame(index=fake.index) if ancestors is None else ancestors.reset_index(drop=True)
        if key is not None and key not in fk_cols:
            before = pd.concat([real[key], *(f[key] for f in new.get(t, []))], ignore_index=True)
            fake[key] = _continue_keys(before, n)
        for r in mine:
            ref = f"{r.parent}.{r.key}"
            if ref not in ctx:  # an existing parent, as often as the real rows refer to each
                ctx[ref] = rng.choice(real[r.column].to_numpy(dtype=object), n)
            fake[r.column] = ctx[ref].to_numpy()
        if key is not None:
            ctx[f"{t}.{key}"] = fake[key].to_numpy()
        fake = _composite_key(fake[list(real.columns)], real, db.primary_keys.get(t) or [], fk_cols)
        new.setdefault(t, []).append(fake)
        if not children or key is None:
            return
        below = _descendants(t, rels)
        for r in rels:
            if r.parent != t or r.key != key or r.child == t:
                continue
            if any(o.child == r.child and o.parent in below and o.parent != r.child for o in rels):
                continue  # grown under the lower of its parents
            per_parent = db.frames[r.child][r.column].value_counts().reindex(real[key], fill_value=0).to_numpy()
            if len(per_parent) >= 5:
                per_parent = np.minimum(per_parent, np.sort(per_parent)[-5])
            counts = rng.choice(per_parent, n)
            if counts.sum():
                grow(r.child, int(counts.sum()), ctx.loc[ctx.index.repeat(counts)])

    grow(table, rows)
    frames = {t: pd.concat(new[t], ignore_index=True) for t in _parents_first(list(new), rels)}
    SqlWriter(url, schema=schema, if_exists="append").write(frames)
    return "added " + ", ".join(f"{len(df)} row(s) to {t}" for t, df in frames.items()) + " (" + "; ".join(
        f"{t}.{keys[t]} from {df[keys[t]].iloc[0]}" for t, df in frames.items() if t in keys) + ")"
