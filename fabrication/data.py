"""Columnar table data and the expression environment over it.

Values are kept in their internal form (int64 day numbers for dates, category codes for
categoricals, float64 for decimals) so that sampling, checking and solving are array operations;
conversion to what a user sees (ISO dates, labels) happens once, when writing.
Child rows point at parent rows by index (``parent_idx``), never by key value, so keys can be
finalised after parallel batches are merged without rewriting every child.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import expr as E

if TYPE_CHECKING:
    from .model import Project, Table


@dataclass
class TableData:
    name: str
    n: int
    values: dict[str, np.ndarray] = field(default_factory=dict)
    nulls: dict[str, np.ndarray] = field(default_factory=dict)
    parent_idx: np.ndarray | None = None
    expand_idx: np.ndarray | None = None
    explicit_nulls: dict[str, np.ndarray] = field(default_factory=dict)

    def null(self, name: str) -> np.ndarray | None:
        m = self.nulls.get(name)
        return m if m is not None and m.any() else None

    def take(self, rows: np.ndarray) -> TableData:
        return TableData(
            self.name, len(rows), {k: v[rows] for k, v in self.values.items()},
            {k: v[rows] for k, v in self.nulls.items()},
            None if self.parent_idx is None else self.parent_idx[rows],
            None if self.expand_idx is None else self.expand_idx[rows],
        )


def concat(parts: list[TableData], name: str) -> TableData:
    parts = [p for p in parts if p is not None]
    n = sum(p.n for p in parts)
    out = TableData(name, n)
    if not parts:
        return out
    for k in parts[0].values:
        out.values[k] = np.concatenate([p.values[k] for p in parts])
    keys = set().union(*(p.nulls.keys() for p in parts))
    for k in keys:
        out.nulls[k] = np.concatenate([p.nulls.get(k, np.zeros(p.n, dtype=bool)) for p in parts])
    for k in set().union(*(p.explicit_nulls.keys() for p in parts)):
        out.explicit_nulls[k] = np.concatenate([p.explicit_nulls.get(k, np.zeros(p.n, dtype=bool)) for p in parts])
    return out


class TableEnv:
    """Evaluates expressions written in ``table`` over (a subset of) its rows."""

    def __init__(self, project: Project, table: Table, data: dict[str, TableData], rows: np.ndarray | None = None):
        self.project = project
        self.table = table
        self.data = data
        self.td = data[table.name]
        self.rows = rows
        self.n = self.td.n if rows is None else len(rows)
        self._idx_cache: dict[str, np.ndarray] = {}

    def _own_idx(self) -> np.ndarray | None:
        return self.rows

    def index_to(self, tname: str) -> np.ndarray:
        """Row index into ``tname`` (an ancestor or the expansion table) for each row."""
        if tname in self._idx_cache:
            return self._idx_cache[tname]
        if tname == self.table.expand:
            idx = self.td.expand_idx
        else:
            idx = self.td.parent_idx
            cur = self.table
            while cur.parent != tname:
                idx = self.data[cur.parent].parent_idx[idx]  # type: ignore[index]
                cur = self.project.tables[cur.parent]  # type: ignore[index]
        assert idx is not None
        if self.rows is not None:
            idx = idx[self.rows]
        self._idx_cache[tname] = idx
        return idx

    def get(self, col: E.Col) -> E.Vec:
        if col.table is None or col.table == self.table.name:
            v = self.td.values.get(col.name)
            if v is None:
                raise E.ExprError(f"column {col.name!r} of {self.table.name} is not generated yet")
            m = self.td.null(col.name)
            if self.rows is not None:
                return v[self.rows], (m[self.rows] if m is not None else None)
            return v, m
        idx = self.index_to(col.table)
        other = self.data[col.table]
        m = other.null(col.name)
        return other.values[col.name][idx], (m[idx] if m is not None else None)

    def lookup(self, table: str, column: str, key: E.Vec, key_t: E.TypeInfo) -> E.Vec:
        t = self.project.tables[table]
        td = self.data[table]
        kname = t.key or t.primary_key[0]
        kcol = t.columns[kname]
        keys = td.values[kname]
        vals, km = key
        if key_t.type == E.T.CATEGORICAL and kcol.type == E.T.CATEGORICAL:
            # map via labels so differing category sets still meet
            labels_key = np.asarray(kcol.categories, dtype=object)[keys]
            pos = {lab: i for i, lab in enumerate(labels_key)}
            per_cat = np.array([pos.get(lab, -1) for lab in key_t.categories], dtype=np.int64)  # type: ignore[union-attr]
            ridx = per_cat[vals]
        else:
            if key_t.type == E.T.CATEGORICAL:
                vals = np.asarray(key_t.categories, dtype=object)[vals]
            if kcol.type == E.T.CATEGORICAL:
                keys = np.asarray(kcol.categories, dtype=object)[keys]
            pos = {k: i for i, k in enumerate(keys.tolist())}
            ridx = np.array([pos.get(v, -1) for v in vals.tolist()], dtype=np.int64)
        missing = ridx < 0
        out = td.values[column][np.maximum(ridx, 0)]
        m = missing | (km if km is not None else False)
        vm = td.null(column)
        if vm is not None:
            m = m | vm[np.maximum(ridx, 0)]
        return out, (m if np.any(m) else None)

    def groups(self) -> np.ndarray:
        g = self.td.parent_idx if self.td.parent_idx is not None else np.zeros(self.td.n, dtype=np.int64)
        if self.table.expand and self.td.parent_idx is not None:
            g = self.td.parent_idx
        return g if self.rows is None else g[self.rows]


# ---------------------------------------------------------------------------- external form


def external_column(col, values: np.ndarray, nulls: np.ndarray | None) -> pd.Series | np.ndarray:
    """Internal values → what users and writers see (ISO dates, labels, rounded decimals)."""
    t = col.type
    if t == E.T.DATE:
        out = E.days_to_iso(values).astype(object)
    elif t == E.T.DATETIME:
        out = E.seconds_to_iso(values).astype(object)
    elif t == E.T.CATEGORICAL:
        cats = np.asarray(col.categories, dtype=object)
        out = cats[np.clip(values, 0, len(cats) - 1)]
    elif t == E.T.DECIMAL:
        out = np.round(values.astype(float), col.precision)
        if nulls is not None:
            out = out.astype(object)
    elif t == E.T.INT:
        out = values.astype(np.int64)
        if nulls is not None:
            return pd.arrays.IntegerArray(out, np.asarray(nulls, dtype=bool).copy())
    elif t == E.T.BOOL:
        out = values.astype(bool)
        if nulls is not None:
            return pd.arrays.BooleanArray(out, np.asarray(nulls, dtype=bool).copy())
    else:
        out = values
    if nulls is not None:
        out = np.where(nulls, None, out)
    return out


def to_frame(table: Table, td: TableData, all_columns: bool = False) -> pd.DataFrame:
    cols = {}
    for name, col in table.columns.items():
        if not (col.output or all_columns):
            continue
        cols[name] = external_column(col, td.values[name], td.null(name))
    return pd.DataFrame(cols, copy=False)
