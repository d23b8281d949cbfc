"""The rule expression language: one small, safe language for every rule and formula.

A rule such as ``discharge_date >= admission_date`` or ``febrile_neutropenia -> neutropenia_grade >= 3``
must mean exactly the same thing in two places: when numpy checks a million fabricated rows, and when
MiniZinc repairs the rows that broke it. So expressions are parsed once (with Python's own ``ast``
parser, whitelisting node kinds so nothing can be executed), type-checked against the project's
columns, and then either evaluated vectorised or compiled to MiniZinc.

Semantics worth knowing:
- Dates are day numbers (days since 1970-01-01), datetimes seconds; ``date - date`` is an int.
- Null follows SQL CHECK semantics: an expression touching a null value is null, and a rule whose
  value is null passes. ``is_null(x)`` / ``not_null(x)`` look at nullness itself.
- ``//`` and ``%`` truncate toward zero (as MiniZinc's ``div``/``mod`` do), so checking and solving
  agree; ``years(a, b)`` is ``(b - a) * 100 // 36525`` (whole mean-Gregorian years).
- ``a -> b`` is not Python; write ``implies(a, b)`` or use a rule's ``when:``.
"""

from __future__ import annotations

import ast
import datetime as _dt
import keyword
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from math import gcd
from typing import Any, Protocol

import numpy as np

EPOCH = _dt.date(1970, 1, 1)


class ExprError(ValueError):
    """An expression that cannot be parsed or does not type-check; the message says why."""


class T(StrEnum):
    INT = "int"
    DECIMAL = "decimal"
    BOOL = "bool"
    STRING = "string"
    DATE = "date"
    DATETIME = "datetime"
    CATEGORICAL = "categorical"


NUMERIC = {T.INT, T.DECIMAL, T.BOOL}
ORDERED = NUMERIC | {T.DATE, T.DATETIME}


def date_to_days(value: str | _dt.date) -> int:
    if isinstance(value, str):
        value = _dt.date.fromisoformat(value.strip())
    if isinstance(value, _dt.datetime):
        value = value.date()
    return (value - EPOCH).days


def datetime_to_seconds(value: str | _dt.datetime) -> int:
    if isinstance(value, str):
        value = _dt.datetime.fromisoformat(value.strip())
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        value = _dt.datetime(value.year, value.month, value.day)
    return int((value - _dt.datetime(1970, 1, 1)).total_seconds())


def days_to_iso(days: np.ndarray) -> np.ndarray:
    return np.asarray(days, dtype="int64").astype("datetime64[D]").astype(str)


def seconds_to_iso(secs: np.ndarray) -> np.ndarray:
    return np.asarray(secs, dtype="int64").astype("datetime64[s]").astype(str)


@dataclass(frozen=True)
class TypeInfo:
    type: T
    categories: tuple[str, ...] | None = None
    scale: int = 1  # decimal columns are solved in units of 1/scale


class Resolver(Protocol):
    """Answers what a column name means where the expression is used."""

    def column(self, table: str | None, name: str) -> TypeInfo: ...

    def lookup(self, table: str, column: str) -> tuple[TypeInfo, TypeInfo]:
        """(key type, value type) of ``lookup(table, column, key)``."""
        ...


# --------------------------------------------------------------------------- nodes


@dataclass(eq=False)
class Node:
    t: TypeInfo | None = field(default=None, init=False, repr=False)

    def children(self) -> Iterable[Node]:
        return ()


@dataclass(eq=False)
class Col(Node):
    table: str | None
    name: str

    @property
    def key(self) -> str:
        return f"{self.table}.{self.name}" if self.table else self.name


@dataclass(eq=False)
class Lit(Node):
    value: Any
    kind: T


@dataclass(eq=False)
class Unary(Node):
    op: str  # "not" | "-"
    x: Node

    def children(self):
        return (self.x,)


@dataclass(eq=False)
class Bin(Node):
    op: str
    left: Node
    right: Node

    def children(self):
        return (self.left, self.right)


@dataclass(eq=False)
class Cmp(Node):
    op: str
    left: Node
    right: Node

    def children(self):
        return (self.left, self.right)


@dataclass(eq=False)
class InList(Node):
    x: Node
    values: list[Lit]
    negate: bool

    def children(self):
        return (self.x, *self.values)


@dataclass(eq=False)
class Logic(Node):
    op: str  # "and" | "or"
    items: list[Node]

    def children(self):
        return tuple(self.items)


@dataclass(eq=False)
class Cond(Node):
    cond: Node
    a: Node
    b: Node

    def children(self):
        return (self.cond, self.a, self.b)


@dataclass(eq=False)
class Call(Node):
    fn: str
    args: list[Node]

    def children(self):
        return tuple(self.args)


def substitute(node: Node, names: dict[str, Node]) -> Node:
    """``node`` with every bare name in ``names`` (a table's named conditions) replaced by a copy of
    its expression."""
    import copy
    import dataclasses

    if isinstance(node, Col) and node.table is None and node.name in names:
        return copy.deepcopy(names[node.name])
    for f in dataclasses.fields(node):
        v = getattr(node, f.name)
        if isinstance(v, Node):
            setattr(node, f.name, substitute(v, names))
        elif isinstance(v, list) and v and isinstance(v[0], Node):
            setattr(node, f.name, [substitute(x, names) for x in v])
    return node


WINDOW_FUNCS = {"cumsum", "lag", "row_number", "group_size"}
STRING_FUNCS = {"substr", "digit", "strftime", "length", "matches", "str"}
#: names an expression reads as literals, never as columns
RESERVED_NAMES = {"true", "false"}
_EXPR_KEYWORDS = {"and", "or", "not", "in", "if", "else", "is", "True", "False", "None"}
FUNCS = {
    "abs", "min", "max", "sqrt", "round", "floor", "ceil", "years", "date", "datetime", "is_null",
    "not_null", "coalesce", "implies", "lookup", "int", "exp", "log", "clip",
} | WINDOW_FUNCS | STRING_FUNCS
_CMP = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_BIN = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}


def parse(text: str) -> Node:
    """Parse an expression; only the whitelisted constructs are accepted."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError("empty expression")
    src = text.strip()
    # allow the familiar spelling of implication: a -> b  ==>  implies(a, b) at top level only
    if "->" in src:
        left, _, right = src.partition("->")
        src = f"implies(({left}), ({right}))"
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError as exc:
        bad = [w for w in re.findall(r"[A-Za-z_]\w*", src) if keyword.iskeyword(w) and w not in _EXPR_KEYWORDS]
        hint = (f" ({bad[0]!r} is a Python keyword and cannot name a column in an expression: "
                f"rename the column, e.g. {bad[0].lower()}_)") if bad else ""
        raise ExprError(f"syntax error in {text!r}: {exc.msg}{hint}") from None
    return _convert(tree.body, text)


def _convert(n: ast.AST, text: str) -> Node:
    c = lambda x: _convert(x, text)  # noqa: E731
    if isinstance(n, ast.Constant):
        v = n.value
        if isinstance(v, bool):
            return Lit(v, T.BOOL)
        if isinstance(v, int):
            return Lit(v, T.INT)
        if isinstance(v, float):
            return Lit(v, T.DECIMAL)
        if isinstance(v, str):
            return Lit(v, T.STRING)
        if v is None:
            raise ExprError(f"{text!r}: use is_null(x) / not_null(x) instead of None")
        raise ExprError(f"{text!r}: unsupported literal {v!r}")
    if isinstance(n, ast.Name):
        if n.id in ("true", "True"):
            return Lit(True, T.BOOL)
        if n.id in ("false", "False"):
            return Lit(False, T.BOOL)
        return Col(None, n.id)
    if isinstance(n, ast.Attribute):
        if not isinstance(n.value, ast.Name):
            raise ExprError(f"{text!r}: only table.column references are allowed")
        return Col(n.value.id, n.attr)
    if isinstance(n, ast.UnaryOp):
        if isinstance(n.op, ast.Not):
            return Unary("not", c(n.operand))
        if isinstance(n.op, ast.USub):
            return Unary("-", c(n.operand))
        if isinstance(n.op, ast.UAdd):
            return c(n.operand)
    if isinstance(n, ast.BinOp) and type(n.op) in _BIN:
        return Bin(_BIN[type(n.op)], c(n.left), c(n.right))
    if isinstance(n, ast.BoolOp):
        return Logic("and" if isinstance(n.op, ast.And) else "or", [c(v) for v in n.values])
    if isinstance(n, ast.Compare):
        parts: list[Node] = []
        left = n.left
        for op, right in zip(n.ops, n.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                if not isinstance(right, ast.List | ast.Tuple | ast.Set):
                    raise ExprError(f"{text!r}: 'in' needs a literal list")
                vals = [c(e) for e in right.elts]
                if not all(isinstance(v, Lit) for v in vals):
                    raise ExprError(f"{text!r}: 'in' lists hold literals only")
                parts.append(InList(c(left), vals, isinstance(op, ast.NotIn)))  # type: ignore[arg-type]
            elif type(op) in _CMP:
                parts.append(Cmp(_CMP[type(op)], c(left), c(right)))
            else:
                raise ExprError(f"{text!r}: unsupported comparison {type(op).__name__}")
            left = right
        return parts[0] if len(parts) == 1 else Logic("and", parts)
    if isinstance(n, ast.IfExp):
        return Cond(c(n.test), c(n.body), c(n.orelse))
    if isinstance(n, ast.Call):
        if not isinstance(n.func, ast.Name) or n.func.id not in FUNCS:
            name = getattr(n.func, "id", ast.unparse(n.func))
            raise ExprError(f"{text!r}: unknown function {name!r} (known: {', '.join(sorted(FUNCS))})")
        if n.keywords:
            raise ExprError(f"{text!r}: keyword arguments are not supported")
        fn = n.func.id
        if fn == "date":
            if len(n.args) != 1 or not isinstance(n.args[0], ast.Constant):
                raise ExprError(f"{text!r}: date() takes one 'YYYY-MM-DD' literal")
            try:
                return Lit(date_to_days(n.args[0].value), T.DATE)
            except (ValueError, TypeError):
                raise ExprError(f"{text!r}: {n.args[0].value!r} is not a YYYY-MM-DD date") from None
        if fn == "datetime":
            if len(n.args) != 1 or not isinstance(n.args[0], ast.Constant):
                raise ExprError(f"{text!r}: datetime() takes one ISO literal")
            return Lit(datetime_to_seconds(n.args[0].value), T.DATETIME)
        return Call(fn, [c(a) for a in n.args])
    raise ExprError(f"{text!r}: construct {type(n).__name__} is not allowed")


def walk(node: Node) -> Iterable[Node]:
    yield node
    for ch in node.children():
        yield from walk(ch)


def columns_of(node: Node) -> list[Col]:
    return [n for n in walk(node) if isinstance(n, Col)]


def uses_window(node: Node) -> bool:
    return any(isinstance(n, Call) and n.fn in WINDOW_FUNCS for n in walk(node))


# --------------------------------------------------------------------------- typing


def _num_result(a: TypeInfo, b: TypeInfo) -> TypeInfo:
    if T.DECIMAL in (a.type, b.type):
        return TypeInfo(T.DECIMAL, scale=max(a.scale, b.scale))
    return TypeInfo(T.INT)


def typecheck(node: Node, r: Resolver, text: str = "") -> TypeInfo:
    """Annotate every node with its type; raise ExprError naming the problem."""
    where = f"{text!r}: " if text else ""

    def tc(n: Node) -> TypeInfo:
        n.t = _tc(n)
        return n.t

    def coerce_lit(lit: Node, other: TypeInfo) -> None:
        # 'YYYY-MM-DD' strings compared with dates become dates; strings vs categoricals are checked
        if not isinstance(lit, Lit):
            return
        if lit.kind == T.STRING and other.type == T.DATE:
            try:
                lit.value, lit.kind = date_to_days(lit.value), T.DATE
            except ValueError:
                raise ExprError(f"{where}{lit.value!r} is not a YYYY-MM-DD date") from None
            lit.t = TypeInfo(T.DATE)
        elif lit.kind == T.STRING and other.type == T.DATETIME:
            lit.value, lit.kind = datetime_to_seconds(lit.value), T.DATETIME
            lit.t = TypeInfo(T.DATETIME)
        elif lit.kind == T.STRING and other.type == T.CATEGORICAL and (
            other.categories is not None and str(lit.value) not in other.categories
        ):
            raise ExprError(
                f"{where}{lit.value!r} is not a category of the column it is compared with "
                f"(categories: {', '.join(other.categories[:12])}{', …' if len(other.categories) > 12 else ''})"
            )

    def _tc(n: Node) -> TypeInfo:
        if isinstance(n, Lit):
            return TypeInfo(n.kind)
        if isinstance(n, Col):
            return r.column(n.table, n.name)
        if isinstance(n, Unary):
            x = tc(n.x)
            if n.op == "not":
                if x.type != T.BOOL:
                    raise ExprError(f"{where}'not' needs a boolean, got {x.type.value}")
                return TypeInfo(T.BOOL)
            if x.type not in NUMERIC:
                raise ExprError(f"{where}unary '-' needs a number, got {x.type.value}")
            return x if x.type != T.BOOL else TypeInfo(T.INT)
        if isinstance(n, Bin):
            a, b = tc(n.left), tc(n.right)
            if n.op == "+" and a.type == T.STRING and b.type == T.STRING:
                return TypeInfo(T.STRING)
            if n.op in "+-" and a.type in (T.DATE, T.DATETIME) and b.type in (T.INT, T.BOOL):
                return a
            if n.op == "+" and b.type in (T.DATE, T.DATETIME) and a.type in (T.INT, T.BOOL):
                return b
            if n.op == "-" and a.type == b.type and a.type in (T.DATE, T.DATETIME):
                return TypeInfo(T.INT)
            if a.type not in NUMERIC or b.type not in NUMERIC:
                raise ExprError(f"{where}'{n.op}' cannot combine {a.type.value} and {b.type.value}")
            if n.op in ("/", "**"):
                return TypeInfo(T.DECIMAL, scale=max(a.scale, b.scale))
            return _num_result(a, b)
        if isinstance(n, Cmp):
            a = tc(n.left)
            coerce_lit(n.right, a)
            b = tc(n.right)
            coerce_lit(n.left, b)
            a = tc(n.left)
            ok = (
                (a.type in NUMERIC and b.type in NUMERIC)
                or (a.type == b.type and a.type in (T.DATE, T.DATETIME, T.STRING))
                or (a.type == T.CATEGORICAL and b.type in (T.STRING, T.CATEGORICAL))
                or (b.type == T.CATEGORICAL and a.type == T.STRING)
            )
            if not ok:
                raise ExprError(f"{where}cannot compare {a.type.value} with {b.type.value}")
            if T.CATEGORICAL in (a.type, b.type) and n.op not in ("==", "!="):
                raise ExprError(f"{where}categorical values compare only with == / != / in")
            return TypeInfo(T.BOOL)
        if isinstance(n, InList):
            x = tc(n.x)
            for v in n.values:
                coerce_lit(v, x)
                tc(v)
            return TypeInfo(T.BOOL)
        if isinstance(n, Logic):
            for it in n.items:
                if tc(it).type != T.BOOL:
                    raise ExprError(f"{where}'{n.op}' needs booleans")
            return TypeInfo(T.BOOL)
        if isinstance(n, Cond):
            if tc(n.cond).type != T.BOOL:
                raise ExprError(f"{where}the condition of 'if … else' must be boolean")
            a, b = tc(n.a), tc(n.b)
            if a.type == b.type:
                return a if a.scale >= b.scale else b
            if a.type in NUMERIC and b.type in NUMERIC:
                return _num_result(a, b)
            raise ExprError(f"{where}both branches of 'if … else' need the same type")
        if isinstance(n, Call):
            return _call_type(n, tc, r, where)
        raise ExprError(f"{where}unsupported node")

    return tc(node)


def _call_type(n: Call, tc: Callable[[Node], TypeInfo], r: Resolver, where: str) -> TypeInfo:
    fn, args = n.fn, n.args

    def arity(*counts: int) -> None:
        if len(args) not in counts:
            raise ExprError(f"{where}{fn}() takes {' or '.join(map(str, counts))} argument(s)")

    if fn == "lookup":
        arity(3)
        if not all(isinstance(a, Lit) and a.kind == T.STRING for a in args[:2]):
            raise ExprError(f"{where}lookup('table', 'column', key) needs literal table and column names")
        key_t, val_t = r.lookup(args[0].value, args[1].value)  # type: ignore[attr-defined]
        for a in args[:2]:
            a.t = TypeInfo(T.STRING)
        k = tc(args[2])
        if key_t.type == T.CATEGORICAL and k.type not in (T.CATEGORICAL, T.STRING):
            raise ExprError(f"{where}lookup key must be categorical, got {k.type.value}")
        return val_t
    ts = [tc(a) for a in args]
    if fn in ("is_null", "not_null"):
        arity(1)
        return TypeInfo(T.BOOL)
    if fn == "implies":
        arity(2)
        if any(t.type != T.BOOL for t in ts):
            raise ExprError(f"{where}implies(a, b) needs booleans")
        return TypeInfo(T.BOOL)
    if fn == "coalesce":
        if len(ts) < 2 or len({t.type for t in ts}) != 1:
            raise ExprError(f"{where}coalesce() needs two or more arguments of one type")
        return ts[0]
    if fn == "years":
        arity(2)
        if any(t.type != T.DATE for t in ts):
            raise ExprError(f"{where}years(from_date, to_date) needs two dates")
        return TypeInfo(T.INT)
    if fn in ("abs",):
        arity(1)
        if ts[0].type not in NUMERIC:
            raise ExprError(f"{where}abs() needs a number")
        return ts[0] if ts[0].type != T.BOOL else TypeInfo(T.INT)
    if fn in ("min", "max"):
        if len(ts) < 2:
            raise ExprError(f"{where}{fn}() needs two or more arguments")
        if all(t.type in NUMERIC for t in ts):
            out = ts[0]
            for t in ts[1:]:
                out = _num_result(out, t)
            return out
        if len({t.type for t in ts}) == 1 and ts[0].type in ORDERED:
            return ts[0]
        raise ExprError(f"{where}{fn}() needs comparable arguments")
    if fn == "clip":
        arity(3)
        return ts[0]
    if fn in ("sqrt", "exp", "log"):
        arity(1)
        if ts[0].type not in NUMERIC:
            raise ExprError(f"{where}{fn}() needs a number")
        return TypeInfo(T.DECIMAL, scale=10**6)
    if fn == "round":
        arity(1, 2)
        if len(args) == 2:
            if not isinstance(args[1], Lit) or args[1].kind != T.INT:
                raise ExprError(f"{where}round(x, digits) needs literal digits")
            return TypeInfo(T.DECIMAL, scale=10 ** int(args[1].value))
        return TypeInfo(T.INT)
    if fn in ("floor", "ceil", "int"):
        arity(1)
        return TypeInfo(T.INT)
    if fn == "cumsum":
        arity(1)
        if ts[0].type not in NUMERIC:
            raise ExprError(f"{where}cumsum() needs a number")
        return ts[0] if ts[0].type != T.BOOL else TypeInfo(T.INT)
    if fn == "lag":
        arity(2)
        return ts[0]
    if fn in ("row_number", "group_size"):
        arity(0)
        return TypeInfo(T.INT)
    if fn == "substr":
        arity(3)
        return TypeInfo(T.STRING)
    if fn == "digit":
        arity(2)
        return TypeInfo(T.INT)
    if fn == "strftime":
        arity(2)
        if ts[0].type not in (T.DATE, T.DATETIME) or not isinstance(args[1], Lit):
            raise ExprError(f"{where}strftime(date, 'format') needs a date and a literal format")
        return TypeInfo(T.STRING)
    if fn == "length":
        arity(1)
        return TypeInfo(T.INT)
    if fn == "matches":
        arity(2)
        if not isinstance(args[1], Lit) or args[1].kind != T.STRING:
            raise ExprError(f"{where}matches(s, 'regex') needs a literal regex")
        try:
            re.compile(args[1].value)
        except re.error as exc:
            raise ExprError(f"{where}bad regex {args[1].value!r}: {exc}") from None
        return TypeInfo(T.BOOL)
    if fn == "str":
        arity(1)
        return TypeInfo(T.STRING)
    raise ExprError(f"{where}unknown function {fn}")


# --------------------------------------------------------------------------- evaluation

Vec = tuple[np.ndarray, np.ndarray | None]  # values, null mask (None = no nulls)


class Env(Protocol):
    n: int

    def get(self, col: Col) -> Vec: ...

    def lookup(self, table: str, column: str, key: Vec, key_t: TypeInfo) -> Vec: ...

    def groups(self) -> np.ndarray:
        """Group id per row (rows of one group are contiguous), for window functions."""
        ...


def _or_nulls(*ms: np.ndarray | None) -> np.ndarray | None:
    out = None
    for m in ms:
        if m is None:
            continue
        out = m.copy() if out is None else (out | m)
    return out


def _trunc_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        if np.issubdtype(np.asarray(a).dtype, np.integer) and np.issubdtype(np.asarray(b).dtype, np.integer):
            bb = np.where(b == 0, 1, b)
            q = np.abs(a) // np.abs(bb)
            return np.where((a < 0) ^ (bb < 0), -q, q)
        return np.trunc(np.asarray(a, dtype=float) / np.asarray(b, dtype=float))


def _cat_code(categories: tuple[str, ...] | None, value: str) -> int:
    if categories is None:
        raise ExprError(f"cannot compare {value!r} with a column without categories")
    try:
        return categories.index(str(value))
    except ValueError:
        return -1


def evaluate(node: Node, env: Env) -> Vec:
    """Vectorised evaluation over every row of ``env``; returns values and null mask."""
    n = env.n

    def ev(x: Node) -> Vec:
        return _ev(x)

    def as_num(v: Vec, t: TypeInfo | None) -> np.ndarray:
        a = v[0]
        if t is not None and t.type == T.BOOL:
            return a.astype(np.int64)
        return a

    def _ev(x: Node) -> Vec:
        if isinstance(x, Lit):
            if x.kind == T.STRING:
                return np.full(n, x.value, dtype=object), None
            return np.full(n, x.value), None
        if isinstance(x, Col):
            return env.get(x)
        if isinstance(x, Unary):
            v, m = ev(x.x)
            return (~v.astype(bool), m) if x.op == "not" else (-as_num((v, m), x.x.t), m)
        if isinstance(x, Bin):
            va, ma = ev(x.left)
            vb, mb = ev(x.right)
            a, b = as_num((va, ma), x.left.t), as_num((vb, mb), x.right.t)
            m = _or_nulls(ma, mb)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                if x.op == "+":
                    if x.t and x.t.type == T.STRING:
                        return np.char.add(a.astype(str), b.astype(str)).astype(object), m
                    return a + b, m
                if x.op == "-":
                    return a - b, m
                if x.op == "*":
                    return a * b, m
                if x.op == "/":
                    return a / np.asarray(b, dtype=float), m
                if x.op == "//":
                    return _trunc_div(a, b), m
                if x.op == "%":
                    return np.fmod(a, np.where(b == 0, 1, b)), m
                if x.op == "**":
                    return np.power(np.asarray(a, dtype=float), b), m
            raise ExprError(f"operator {x.op}")
        if isinstance(x, Cmp):
            return _cmp(x, ev), _or_nulls(ev(x.left)[1], ev(x.right)[1])
        if isinstance(x, InList):
            v, m = ev(x.x)
            t = x.x.t
            if t is not None and t.type == T.CATEGORICAL:
                codes = [_cat_code(t.categories, lit.value) for lit in x.values]
                out = np.isin(v, codes)
            else:
                out = np.isin(v, [lit.value for lit in x.values])
            return (~out if x.negate else out), m
        if isinstance(x, Logic):
            vals = [ev(i) for i in x.items]
            out = vals[0][0].astype(bool)
            for v, _ in vals[1:]:
                out = (out & v.astype(bool)) if x.op == "and" else (out | v.astype(bool))
            # SQL three-valued logic, simplified: a definite False in 'and' (True in 'or') decides
            nulls = _or_nulls(*(m for _, m in vals))
            if nulls is not None:
                decided = np.zeros(n, dtype=bool)
                for v, m in vals:
                    vv = v.astype(bool) if x.op == "or" else ~v.astype(bool)
                    decided |= vv & (~m if m is not None else True)
                nulls = nulls & ~decided
            return out, nulls
        if isinstance(x, Cond):
            c, mc = ev(x.cond)
            a, ma = ev(x.a)
            b, mb = ev(x.b)
            cb = c.astype(bool)
            out = np.where(cb, as_num((a, ma), x.a.t), as_num((b, mb), x.b.t))
            m = None
            if ma is not None or mb is not None or mc is not None:
                m = np.where(cb, ma if ma is not None else False, mb if mb is not None else False)
                if mc is not None:
                    m = m | mc
            return out, m
        if isinstance(x, Call):
            return _call(x, ev, env, as_num)
        raise ExprError("unsupported node")

    v, m = ev(node)
    if m is not None and not m.any():
        m = None
    return v, m


def _cmp(x: Cmp, ev: Callable[[Node], Vec]) -> np.ndarray:
    a_t, b_t = x.left.t, x.right.t
    (a, _), (b, _) = ev(x.left), ev(x.right)
    if a_t and a_t.type == T.CATEGORICAL and isinstance(x.right, Lit):
        b = np.full(len(a), _cat_code(a_t.categories, x.right.value))
    elif b_t and b_t.type == T.CATEGORICAL and isinstance(x.left, Lit):
        a = np.full(len(b), _cat_code(b_t.categories, x.left.value))
    elif a_t and b_t and a_t.type == T.CATEGORICAL and b_t.type == T.CATEGORICAL:
        if a_t.categories != b_t.categories:
            a = np.asarray(a_t.categories, dtype=object)[a]
            b = np.asarray(b_t.categories, dtype=object)[b]
    elif a_t and b_t and T.CATEGORICAL in (a_t.type, b_t.type):
        # categorical vs string column: compare labels
        if a_t.type == T.CATEGORICAL:
            a = np.asarray(a_t.categories, dtype=object)[a]
        else:
            b = np.asarray(b_t.categories, dtype=object)[b]
    floaty = T.DECIMAL in (getattr(a_t, "type", None), getattr(b_t, "type", None))
    if floaty and x.op in ("==", "!="):
        eq = np.isclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-9, atol=1e-9)
        return eq if x.op == "==" else ~eq
    with np.errstate(invalid="ignore"):
        return {
            "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
            "==": np.equal, "!=": np.not_equal,
        }[x.op](a, b)


def _groups_start(g: np.ndarray) -> np.ndarray:
    """Index of the first row of each row's group (rows of a group are contiguous)."""
    if len(g) == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.empty(len(g), dtype=bool)
    new[0] = True
    new[1:] = g[1:] != g[:-1]
    starts = np.flatnonzero(new)
    return starts[np.cumsum(new) - 1]


def _call(x: Call, ev: Callable[[Node], Vec], env: Env, as_num) -> Vec:
    fn, args = x.fn, x.args
    n = env.n
    if fn == "is_null":
        m = ev(args[0])[1]
        return (m.copy() if m is not None else np.zeros(n, dtype=bool)), None
    if fn == "not_null":
        m = ev(args[0])[1]
        return (~m if m is not None else np.ones(n, dtype=bool)), None
    if fn == "lookup":
        key = ev(args[2])
        return env.lookup(args[0].value, args[1].value, key, args[2].t)  # type: ignore[attr-defined]
    vals = [ev(a) for a in args]
    nulls = _or_nulls(*(m for _, m in vals))
    nums = [as_num(v, a.t) for v, a in zip(vals, args, strict=True)]
    if fn == "implies":
        a, b = nums[0].astype(bool), nums[1].astype(bool)
        return ~a | b, nulls
    if fn == "coalesce":
        out, m = vals[0][0].copy(), vals[0][1]
        for v, mm in vals[1:]:
            if m is None:
                break
            out = np.where(m, v, out)
            m = m & mm if mm is not None else None
        return out, m
    if fn == "years":
        return _trunc_div((nums[1] - nums[0]) * 100, np.full(n, 36525)), nulls
    if fn == "abs":
        return np.abs(nums[0]), nulls
    if fn == "min":
        return np.minimum.reduce(nums), nulls
    if fn == "max":
        return np.maximum.reduce(nums), nulls
    if fn == "clip":
        return np.clip(nums[0], nums[1], nums[2]), nulls
    with np.errstate(invalid="ignore", divide="ignore"):
        if fn == "sqrt":
            return np.sqrt(np.asarray(nums[0], dtype=float)), nulls
        if fn == "exp":
            return np.exp(np.asarray(nums[0], dtype=float)), nulls
        if fn == "log":
            return np.log(np.asarray(nums[0], dtype=float)), nulls
    if fn == "round":
        if len(args) == 2:
            return np.round(np.asarray(nums[0], dtype=float), int(args[1].value)), nulls  # type: ignore[attr-defined]
        return np.round(np.asarray(nums[0], dtype=float)).astype(np.int64), nulls
    if fn == "floor":
        return np.floor(np.asarray(nums[0], dtype=float)).astype(np.int64), nulls
    if fn == "ceil":
        return np.ceil(np.asarray(nums[0], dtype=float)).astype(np.int64), nulls
    if fn == "int":
        a = nums[0]
        if a.dtype == object:
            return np.array([int(s) if s not in (None, "") else 0 for s in a], dtype=np.int64), nulls
        return np.trunc(np.asarray(a, dtype=float)).astype(np.int64), nulls
    if fn in ("cumsum", "lag", "row_number", "group_size"):
        g = env.groups()
        starts = _groups_start(g)
        idx = np.arange(n)
        if fn == "row_number":
            return idx - starts + 1, None
        if fn == "group_size":
            ends = np.r_[np.flatnonzero(g[1:] != g[:-1]), n - 1] if n else np.zeros(0, dtype=np.int64)
            sizes = np.diff(np.r_[-1, ends])
            return np.repeat(sizes, sizes), None
        if fn == "cumsum":
            a = np.where(nulls, 0, nums[0]) if nulls is not None else nums[0]
            cs = np.cumsum(a)
            before = np.where(starts > 0, cs[np.maximum(starts - 1, 0)], 0)
            return cs - before, None
        first = idx == starts
        prev = np.where(first, 0, idx - 1)
        out = np.where(first, nums[1], nums[0][prev])
        m = None
        if vals[0][1] is not None:
            m = np.where(first, False, vals[0][1][prev])
        return out, m
    # string functions (checked only; repaired by regeneration, never by the solver)
    s = vals[0][0]
    if fn == "substr":
        a, b = int(nums[1][0]) if n else 0, int(nums[2][0]) if n else 0
        return np.array([str(v)[a : a + b] for v in s], dtype=object), nulls
    if fn == "digit":
        i = int(nums[1][0]) if n else 0
        out = np.array([int(str(v)[i]) if len(str(v)) > i and str(v)[i].isdigit() else -1 for v in s])
        return out.astype(np.int64), nulls
    if fn == "strftime":
        fmt = args[1].value  # type: ignore[attr-defined]
        t = args[0].t
        if t is not None and t.type == T.DATE:
            return np.array([(EPOCH + _dt.timedelta(days=int(d))).strftime(fmt) for d in s], dtype=object), nulls
        base = _dt.datetime(1970, 1, 1)
        return np.array([(base + _dt.timedelta(seconds=int(d))).strftime(fmt) for d in s], dtype=object), nulls
    if fn == "length":
        return np.array([len(str(v)) for v in s], dtype=np.int64), nulls
    if fn == "matches":
        rx = re.compile(args[1].value)  # type: ignore[attr-defined]
        return np.array([bool(rx.fullmatch(str(v))) for v in s], dtype=bool), nulls
    if fn == "str":
        t = args[0].t
        if t is not None and t.type == T.CATEGORICAL:
            return np.asarray(t.categories, dtype=object)[s], nulls
        return np.array([str(v) for v in s], dtype=object), nulls
    raise ExprError(f"unknown function {fn}")


# --------------------------------------------------------------------------- MiniZinc compilation


class NotCompilable(ExprError):
    """The expression uses something MiniZinc cannot express (strings, windows, rounding)."""


FLOAT_EPS = 1e-6


class MznScope(Protocol):
    """Gives MiniZinc terms for row ``i``: solver variables, inlined formulas and folded constants."""

    def fold(self, node: Node) -> tuple[str, str] | None:
        """If ``node`` involves no solver variable, register its per-row value as data and return
        (term, kind); else None. Folding is what lets string, window and lookup logic appear in a
        rule: only the parts that touch a variable must have a MiniZinc form."""
        ...

    def column(self, col: Col) -> tuple[str, str]:
        """(term, kind) of a column that involves solver variables; kind is int, float or bool."""
        ...

    def lookup_array(self, table: str, column: str, key_t: TypeInfo) -> tuple[str, TypeInfo]: ...


def to_minizinc(node: Node, scope: MznScope) -> str:
    """Compile a boolean expression to a MiniZinc constraint body for row ``i``."""
    code, kind = _mz(node, scope)
    if kind != "bool":
        raise NotCompilable("a rule must be boolean")
    return code


def _as(code: str, kind: str, want: str) -> str:
    if kind == want:
        return code
    if kind == "bool" and want == "int":
        return f"bool2int({code})"
    if kind == "bool" and want == "float":
        return f"int2float(bool2int({code}))"
    if kind == "int" and want == "float":
        return f"int2float({code})"
    if kind == "int" and want == "bool":
        return f"({code} != 0)"
    raise NotCompilable(f"cannot use a {kind} value as {want}")


def _fmt_float(v: float) -> str:
    s = repr(float(v))
    return s if ("." in s or "e" in s) else s + ".0"


def _mz(x: Node, sc: MznScope) -> tuple[str, str]:
    if not isinstance(x, Lit):
        folded = sc.fold(x)
        if folded is not None:
            return folded
    if isinstance(x, Lit):
        if x.kind == T.BOOL:
            return ("true" if x.value else "false"), "bool"
        if x.kind in (T.INT, T.DATE, T.DATETIME):
            return str(int(x.value)), "int"
        if x.kind == T.DECIMAL:
            return _fmt_float(x.value), "float"
        raise NotCompilable("string literal outside a categorical comparison")
    if isinstance(x, Col):
        return sc.column(x)
    if isinstance(x, Unary):
        c, k = _mz(x.x, sc)
        if x.op == "not":
            return f"(not {c})", "bool"
        k2 = "float" if k == "float" else "int"
        return f"(-{_as(c, k, k2)})", k2
    if isinstance(x, Bin):
        a, ka = _mz(x.left, sc)
        b, kb = _mz(x.right, sc)
        if x.op == "**" and isinstance(x.right, Lit) and x.right.kind == T.INT and 1 <= int(x.right.value) <= 4:
            k = "float" if ka == "float" else "int"
            base = _as(a, ka, k)
            return "(" + " * ".join([base] * int(x.right.value)) + ")", k
        if x.op in ("/", "**"):
            op = "/" if x.op == "/" else "pow"
            if op == "pow":
                return f"pow({_as(a, ka, 'float')}, {_as(b, kb, 'float')})", "float"
            return f"({_as(a, ka, 'float')} / {_as(b, kb, 'float')})", "float"
        if x.op in ("//", "%"):
            if "float" in (ka, kb):
                raise NotCompilable("// and % need integers")
            return f"({_as(a, ka, 'int')} {'div' if x.op == '//' else 'mod'} {_as(b, kb, 'int')})", "int"
        k = "float" if "float" in (ka, kb) else "int"
        return f"({_as(a, ka, k)} {x.op} {_as(b, kb, k)})", k
    if isinstance(x, Cmp):
        lt, rt = x.left.t, x.right.t
        if (lt and lt.type == T.CATEGORICAL) or (rt and rt.type == T.CATEGORICAL):
            return _mz_cat_cmp(x, sc), "bool"
        linear = _mz_linear_cmp(x, sc)
        if linear is not None:
            return linear, "bool"
        a, ka = _mz(x.left, sc)
        b, kb = _mz(x.right, sc)
        op = {"==": "=", "!=": "!="}.get(x.op, x.op)
        if "float" in (ka, kb):
            fa, fb = _as(a, ka, "float"), _as(b, kb, "float")
            eps = _fmt_float(FLOAT_EPS)
            if x.op in ("<=", "<"):
                return f"({fa} + {eps} {x.op} {fb})", "bool"
            if x.op in (">=", ">"):
                return f"({fa} {x.op} {fb} + {eps})", "bool"
            if x.op == "==":
                return f"(abs({fa} - {fb}) <= {eps})", "bool"
            return f"(abs({fa} - {fb}) > {eps})", "bool"
        if ka == "bool" and kb == "bool" and op in ("=", "!="):
            return f"({a} {'<->' if op == '=' else 'xor'} {b})", "bool"
        return f"({_as(a, ka, 'int')} {op} {_as(b, kb, 'int')})", "bool"
    if isinstance(x, InList):
        t = x.x.t
        c, k = _mz(x.x, sc)
        if t is not None and t.type == T.CATEGORICAL:
            vals = [_cat_code(t.categories, lit.value) + 1 for lit in x.values]
        elif k == "int":
            vals = [int(lit.value) for lit in x.values]
        else:
            raise NotCompilable("'in' over non-integer values")
        s = "{" + ", ".join(str(v) for v in vals) + "}"
        return (f"(not ({c} in {s}))" if x.negate else f"({c} in {s})"), "bool"
    if isinstance(x, Logic):
        parts = [_as(*_mz(i, sc), "bool") for i in x.items]
        return "(" + (" /\\ " if x.op == "and" else " \\/ ").join(parts) + ")", "bool"
    if isinstance(x, Cond):
        c = _as(*_mz(x.cond, sc), "bool")
        a, ka = _mz(x.a, sc)
        b, kb = _mz(x.b, sc)
        k = "float" if "float" in (ka, kb) else ("bool" if ka == kb == "bool" else "int")
        return f"(if {c} then {_as(a, ka, k)} else {_as(b, kb, k)} endif)", k
    if isinstance(x, Call):
        return _mz_call(x, sc)
    raise NotCompilable(type(x).__name__)


def _mz_cat_cmp(x: Cmp, sc: MznScope) -> str:
    lt, rt = x.left.t, x.right.t
    op = "=" if x.op == "==" else "!="
    if isinstance(x.right, Lit) and lt is not None:
        a, _ = _mz(x.left, sc)
        return f"({a} {op} {_cat_code(lt.categories, x.right.value) + 1})"
    if isinstance(x.left, Lit) and rt is not None:
        b, _ = _mz(x.right, sc)
        return f"({_cat_code(rt.categories, x.left.value) + 1} {op} {b})"
    if lt and rt and lt.categories == rt.categories:
        a, _ = _mz(x.left, sc)
        b, _ = _mz(x.right, sc)
        return f"({a} {op} {b})"
    raise NotCompilable("categorical comparison across different category sets")


def _mz_call(x: Call, sc: MznScope) -> tuple[str, str]:
    fn, args = x.fn, x.args
    if fn == "lookup":
        arr, vt = sc.lookup_array(args[0].value, args[1].value, args[2].t)  # type: ignore[attr-defined, arg-type]
        k, kk = _mz(args[2], sc)
        if vt.type == T.DECIMAL:
            return f"{arr}[{k}]", "float"
        if vt.type == T.BOOL:
            return f"({arr}[{k}] = 1)", "bool"
        return f"{arr}[{k}]", "int"
    if fn in WINDOW_FUNCS or fn in STRING_FUNCS or fn in ("round", "floor", "ceil", "int", "coalesce", "exp", "log"):
        raise NotCompilable(f"{fn}() has no solver form")
    cs = [_mz(a, sc) for a in args]
    if fn == "implies":
        return f"({_as(*cs[0], 'bool')} -> {_as(*cs[1], 'bool')})", "bool"
    if fn == "years":
        a, b = _as(*cs[0], "int"), _as(*cs[1], "int")
        return f"((({b}) - ({a})) * 100 div 36525)", "int"
    k = "float" if any(c[1] == "float" for c in cs) else "int"
    if fn == "abs":
        return f"abs({_as(*cs[0], k)})", k
    if fn in ("min", "max"):
        inner = ", ".join(_as(c, kc, k) for c, kc in cs)
        return f"{fn}([{inner}])", k
    if fn == "clip":
        v, lo, hi = (_as(c, kc, k) for c, kc in cs)
        return f"max({lo}, min({hi}, {v}))", k
    if fn == "sqrt":
        return f"sqrt({_as(*cs[0], 'float')})", "float"
    raise NotCompilable(fn)


def is_compilable(node: Node, scope: MznScope) -> bool:
    try:
        to_minizinc(node, scope)
    except NotCompilable:
        return False
    return True


# ---------------------------------------------------------------------------- exact integer form
#
# Comparisons of linear expressions over decimal columns are compiled to *integer* constraints
# (both sides multiplied by the common denominator): Gecode's float propagation through int2float
# is too weak on wide domains and its search thrashes, while the integer form propagates exactly.


def _lin(x: Node, sc) -> tuple[dict[str, Fraction], Fraction] | None:
    if isinstance(x, Lit):
        if x.kind in (T.INT, T.DATE, T.DATETIME, T.BOOL):
            return {}, Fraction(int(x.value))
        if x.kind == T.DECIMAL:
            return {}, Fraction(str(x.value))
        return None
    if not getattr(sc, "depends", lambda n: True)(x):
        folded = getattr(sc, "fold_linear", lambda n: None)(x)
        if folded is None:
            return None
        term, coeff = folded
        return {term: coeff}, Fraction(0)
    if isinstance(x, Col):
        got = getattr(sc, "linear_column", lambda c: None)(x)
        if got is None:
            return None
        if isinstance(got, Node):
            return _lin(got, sc)
        term, coeff = got
        return {term: coeff}, Fraction(0)
    if isinstance(x, Unary) and x.op == "-":
        inner = _lin(x.x, sc)
        if inner is None:
            return None
        return {k: -v for k, v in inner[0].items()}, -inner[1]
    if isinstance(x, Bin) and x.op in "+-*/" and len(x.op) == 1:
        a, b = _lin(x.left, sc), _lin(x.right, sc)
        if a is None or b is None:
            return None
        if x.op in "+-":
            sign = 1 if x.op == "+" else -1
            terms = dict(a[0])
            for k, v in b[0].items():
                terms[k] = terms.get(k, Fraction(0)) + sign * v
            return terms, a[1] + sign * b[1]
        if x.op == "*":
            if not a[0]:
                a, b = b, a
            if b[0]:
                return None  # product of two variables: not linear
            return {k: v * b[1] for k, v in a[0].items()}, a[1] * b[1]
        if b[0] or b[1] == 0:
            return None
        return {k: v / b[1] for k, v in a[0].items()}, a[1] / b[1]
    return None


def _mz_linear_cmp(x: Cmp, sc) -> str | None:
    a, b = _lin(x.left, sc), _lin(x.right, sc)
    if a is None or b is None:
        return None
    terms = dict(a[0])
    for k, v in b[0].items():
        terms[k] = terms.get(k, Fraction(0)) - v
    const = a[1] - b[1]
    terms = {k: v for k, v in terms.items() if v != 0}
    if not terms:
        return None
    den = 1
    for v in [*terms.values(), const]:
        den = den * v.denominator // gcd(den, v.denominator)
    # Gecode's integers are 32-bit: keep coefficients and the right-hand side well inside them
    bound = getattr(sc, "term_bound", lambda term: 2**16)
    total = sum(abs(v * den) * bound(k) for k, v in terms.items()) + abs(const * den)
    if den > 10**9 or total > 2**30:
        return None
    lhs = " + ".join(f"{int(v * den)} * {k}" for k, v in terms.items())
    rhs = int(-const * den) if (-const * den).denominator == 1 else None
    if rhs is None:
        return None
    op = {"==": "=", "!=": "!="}.get(x.op, x.op)
    return f"({lhs} {op} {rhs})"
