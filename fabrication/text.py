"""The rule language printed back: an expression tree (:func:`fabrication.expr.parse`) as text.

``parse(to_text(node))`` is the same tree as ``node`` (up to the spellings the parser folds:
``a -> b`` prints as ``implies(a, b)``, ``a < b < c`` as ``a < b and b < c``), so a rule editor can
keep a form view and a textual view in sync by going through the parser and this printer only —
one source of truth for what a rule means. Parentheses are written only where Python's precedence
(which the parser uses) needs them.
"""

from __future__ import annotations

from . import expr as E

# binding strength, loosest first (Python's grammar)
_COND, _OR, _AND, _NOT, _CMP, _ADD, _MUL, _NEG, _POW, _ATOM = range(1, 11)
_BIN_PREC = {"+": _ADD, "-": _ADD, "*": _MUL, "/": _MUL, "//": _MUL, "%": _MUL, "**": _POW}


def literal(value, kind: E.T) -> str:
    """A literal as the parser reads it back (dates as ``date('YYYY-MM-DD')``)."""
    if kind == E.T.DATE and not isinstance(value, str):
        return f"date('{E.days_to_iso([int(value)])[0]}')"
    if kind == E.T.DATETIME and not isinstance(value, str):
        return f"datetime('{E.seconds_to_iso([int(value)])[0]}')"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:.1f}"
    return repr(value)


def precedence(node: E.Node) -> int:
    if isinstance(node, E.Cond):
        return _COND
    if isinstance(node, E.Logic):
        return _OR if node.op == "or" else _AND
    if isinstance(node, E.Unary):
        return _NOT if node.op == "not" else _NEG
    if isinstance(node, E.Cmp | E.InList):
        return _CMP
    if isinstance(node, E.Bin):
        return _BIN_PREC[node.op]
    if isinstance(node, E.Lit) and isinstance(node.value, int | float) and not isinstance(node.value, bool) \
            and node.value < 0:
        return _NEG
    return _ATOM


def to_text(node: E.Node) -> str:
    """``node`` as rule-language text."""

    def wrap(child: E.Node, at_least: int) -> str:
        s = to_text(child)
        return f"({s})" if precedence(child) < at_least else s

    if isinstance(node, E.Col):
        return node.key
    if isinstance(node, E.Lit):
        return literal(node.value, node.kind)
    if isinstance(node, E.Unary):
        if node.op == "not":
            return f"not {wrap(node.x, _NOT)}"
        return f"-{wrap(node.x, _NEG)}"
    if isinstance(node, E.Bin):
        p = _BIN_PREC[node.op]
        if node.op == "**":  # right-associative; its left side binds tighter than a minus sign
            return f"{wrap(node.left, _ATOM)} ** {wrap(node.right, _NEG)}"
        return f"{wrap(node.left, p)} {node.op} {wrap(node.right, p + 1)}"
    if isinstance(node, E.Cmp):
        return f"{wrap(node.left, _ADD)} {node.op} {wrap(node.right, _ADD)}"
    if isinstance(node, E.InList):
        values = ", ".join(to_text(v) for v in node.values)
        return f"{wrap(node.x, _ADD)} {'not in' if node.negate else 'in'} [{values}]"
    if isinstance(node, E.Logic):
        p = _OR if node.op == "or" else _AND
        return f" {node.op} ".join(wrap(i, p + 1) for i in node.items)
    if isinstance(node, E.Cond):
        return f"{wrap(node.a, _OR)} if {wrap(node.cond, _OR)} else {wrap(node.b, _COND)}"
    if isinstance(node, E.Call):
        return f"{node.fn}({', '.join(to_text(a) for a in node.args)})"
    raise TypeError(f"not an expression node: {node!r}")


__all__ = ["literal", "precedence", "to_text"]
