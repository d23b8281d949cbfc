"""Charts drawn on the server as inline SVG: they need no JavaScript and no CDN, and they obey the
pages' Content-Security-Policy (no inline ``style``: every colour and font comes from a class in
``static/serums.css``, the ``ch-`` block). Each chart is an ``<svg role="img">`` with a ``<title>``
and a ``<desc>`` saying in words what it shows; the pages put the same figures in a table beside it.

The builders take plain data (what :mod:`gateway.oncology` returns) and return ``Markup``:

- :func:`dose_chart` — dose given as % of the planned dose per cycle, reduced doses and delays marked,
  the regimen of each treatment above its cycles;
- :func:`toxicity_heatmap` — CTCAE grade per toxicity type (rows) and assessment (columns), the
  grade written in each cell (colour is never the only cue);
- :func:`charlson_chart` — the Charlson comorbidity index over time;
- :func:`admissions_chart` — each hospital stay as a bar on a time axis;
- :func:`risk_bars` — probabilities as horizontal bars (the next cycle's risk, regimens compared).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

#: CTCAE grade words (the legend of the toxicity chart).
GRADE_WORDS = ("none", "mild", "moderate", "severe", "life-threatening", "death")
_ids = itertools.count(1)


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _attrs(attrs: dict[str, Any]) -> str:
    out = []
    for k, v in attrs.items():
        if v is None:
            continue
        name = k.rstrip("_").replace("_", "-")
        out.append(f' {name}="{escape(_num(v) if isinstance(v, float) else v)}"')
    return "".join(out)


@dataclass
class Svg:
    """A small SVG document: elements appended in drawing order, classes instead of styles."""

    width: int
    height: int
    title: str
    desc: str
    parts: list[str] = field(default_factory=list)

    def add(self, tag: str, text: str | None = None, **attrs: Any) -> None:
        if text is None:
            self.parts.append(f"<{tag}{_attrs(attrs)}/>")
        else:
            self.parts.append(f"<{tag}{_attrs(attrs)}>{escape(text)}</{tag}>")

    def rect(self, x: float, y: float, w: float, h: float, cls: str, **kw: Any) -> None:
        self.add("rect", x=float(x), y=float(y), width=float(max(w, 0)), height=float(max(h, 0)), class_=cls, **kw)

    def line(self, x1: float, y1: float, x2: float, y2: float, cls: str) -> None:
        self.add("line", x1=float(x1), y1=float(y1), x2=float(x2), y2=float(y2), class_=cls)

    def text(self, x: float, y: float, text: str, cls: str = "ch-label", anchor: str = "start", **kw: Any) -> None:
        self.add("text", text, x=float(x), y=float(y), class_=cls, text_anchor=anchor, **kw)

    def render(self) -> Markup:
        n = next(_ids)
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="ch" width="{self.width}" height="{self.height}" '
                f'viewBox="0 0 {self.width} {self.height}" '
                f'role="img" aria-labelledby="ch-t{n} ch-d{n}" focusable="false">'
                f'<title id="ch-t{n}">{escape(self.title)}</title><desc id="ch-d{n}">{escape(self.desc)}</desc>')
        return Markup(head + "".join(self.parts) + "</svg>")


def _date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def short_date(value: Any) -> str:
    d = _date(value)
    return d.strftime("%-d %b %Y") if d else str(value or "")


def _legend(svg: Svg, x: float, y: float, items: Sequence[tuple[str, str]]) -> None:
    """Swatches with their words, left to right from (x, y)."""
    for cls, label in items:
        svg.rect(x, y - 10, 12, 12, cls)
        svg.text(x + 17, y, label, "ch-legend")
        x += 30 + 7 * len(label)


def _date_ticks(start: dt.date, end: dt.date, most: int = 7) -> list[dt.date]:
    """First days of months between ``start`` and ``end``, every k-th month so at most ``most``."""
    months = (end.year - start.year) * 12 + end.month - start.month + 1
    step = next(s for s in (1, 2, 3, 4, 6, 12, 24, 60) if months / s <= most)
    ticks, y, m = [], start.year, start.month
    while (y, m) <= (end.year, end.month):
        d = dt.date(y, m, 1)
        if start <= d <= end and (m - 1) % step == 0:
            ticks.append(d)
        m += 1
        if m > 12:
            y, m = y + 1, 1
    return ticks or [start]


# --------------------------------------------------------------------------- treatment


def dose_chart(cycles: Sequence[dict[str, Any]]) -> Markup:
    """``cycles``: ``{"treatment_id", "regimen", "cycle", "start", "dose_pct", "reduced", "delayed"}``
    in time order; ``dose_pct`` is the dose given as % of the plan (None when no dose was recorded)."""
    left, top, plot_h, col = 56, 46, 190, 76
    width = max(left + col * len(cycles) + 24, 560)
    svg = Svg(width, top + plot_h + 74, "Dose given per cycle, as a percentage of the planned dose",
              _dose_desc(cycles))
    y_max = 125.0

    def y(v: float) -> float:
        return top + plot_h * (1 - min(v, y_max) / y_max)

    for tick in (0, 25, 50, 75, 100, 125):
        svg.line(left, y(tick), width - 16, y(tick), "ch-ref" if tick == 100 else "ch-grid")
        svg.text(left - 6, y(tick) + 4, f"{tick}%", "ch-tick", "end")
    svg.text(14, top + plot_h / 2, "dose given, % of plan", "ch-axis-title", "middle",
             transform=f"rotate(-90 14 {top + plot_h / 2:.0f})")
    for i, c in enumerate(cycles):
        x = left + i * col
        pct = c.get("dose_pct")
        if pct is not None:
            cls = "ch-bar-reduced" if c.get("reduced") else "ch-bar"
            svg.rect(x + 12, y(pct), col - 24, y(0) - y(pct), cls)
            svg.text(x + col / 2, y(pct) - 5, f"{pct:.0f}%", "ch-value", "middle")
        else:
            svg.text(x + col / 2, y(0) - 5, "no dose", "ch-tick", "middle")
        if c.get("delayed"):
            svg.add("path", d=f"M{x + col / 2 - 7:.1f} {y(0) + 28:.1f}h14l-7 -11z", class_="ch-delay")
        svg.text(x + col / 2, y(0) + 15, f"C{c.get('cycle')}", "ch-tick", "middle")
        svg.text(x + col / 2, y(0) + 44, short_date(c.get("start"))[:-5], "ch-tick", "middle")
    # the regimen of each treatment over its cycles
    for _tid, group in itertools.groupby(enumerate(cycles), key=lambda t: t[1].get("treatment_id")):
        items = list(group)
        x0, x1 = left + items[0][0] * col, left + (items[-1][0] + 1) * col
        svg.rect(x0 + 3, top - 30, x1 - x0 - 6, 18, "ch-band")
        svg.text((x0 + x1) / 2, top - 17, f"{items[0][1].get('regimen')}", "ch-band-label", "middle")
    _legend(svg, left, top + plot_h + 68, [("ch-bar", "full dose"), ("ch-bar-reduced", "reduced dose"),
                                           ("ch-delay", "cycle delayed (triangle)")])
    return svg.render()


def _dose_desc(cycles: Sequence[dict[str, Any]]) -> str:
    if not cycles:
        return "No cycles recorded."
    parts = [f"cycle {c.get('cycle')} of {c.get('regimen')} on {short_date(c.get('start'))}: "
             + (f"{c['dose_pct']:.0f}%" if c.get("dose_pct") is not None else "no dose recorded")
             + (", reduced" if c.get("reduced") else "") + (", delayed" if c.get("delayed") else "")
             for c in cycles]
    return "; ".join(parts) + "."


# --------------------------------------------------------------------------- toxicity


def toxicity_heatmap(types: Sequence[tuple[str, str]], assessments: Sequence[dict[str, Any]]) -> Markup:
    """``types``: (attribute, label) rows; ``assessments``: ``{"cycle", "date", "grades": {attribute:
    grade}}`` columns in time order. Each cell shows its grade in a colour of its class ``ch-g<grade>``."""
    left, top, cell_w, cell_h = 150, 52, 74, 28
    width = max(left + cell_w * len(assessments) + 20, 460)
    height = top + cell_h * len(types) + 50
    worst = [max((a["grades"].get(k) or 0) for k, _ in types) if types else 0 for a in assessments]
    desc = "; ".join(f"cycle {a.get('cycle')} ({short_date(a.get('date'))}): worst grade {w}"
                     + "".join(f", {label} {a['grades'][k]}" for k, label in types if (a["grades"].get(k) or 0) >= 3)
                     for a, w in zip(assessments, worst, strict=True)) or "No toxicity assessments."
    svg = Svg(width, height, "Toxicity grade (CTCAE) by type and cycle", desc)
    for j, a in enumerate(assessments):
        x = left + j * cell_w
        svg.text(x + cell_w / 2, top - 26, f"C{a.get('cycle')}", "ch-tick-strong", "middle")
        svg.text(x + cell_w / 2, top - 10, short_date(a.get("date"))[:-5], "ch-tick", "middle")
    for i, (key, label) in enumerate(types):
        yy = top + i * cell_h
        svg.text(left - 8, yy + cell_h / 2 + 4, label, "ch-label", "end")
        for j, a in enumerate(assessments):
            grade = a["grades"].get(key)
            x = left + j * cell_w
            if grade is None:
                svg.rect(x + 1, yy + 1, cell_w - 2, cell_h - 2, "ch-gnone")
                svg.text(x + cell_w / 2, yy + cell_h / 2 + 4, "–", "ch-cell-dark", "middle")
                continue
            g = max(0, min(int(grade), 5))
            svg.rect(x + 1, yy + 1, cell_w - 2, cell_h - 2, f"ch-g{g}")
            svg.text(x + cell_w / 2, yy + cell_h / 2 + 4, str(g), "ch-cell-light" if g >= 3 else "ch-cell-dark",
                     "middle")
    _legend(svg, 8, height - 14, [(f"ch-g{g}", f"{g} {GRADE_WORDS[g]}") for g in range(5)])
    return svg.render()


# --------------------------------------------------------------------------- comorbidities and admissions


def _time_axis(svg: Svg, start: dt.date, end: dt.date, left: float, right: float, y_axis: float,
               top: float) -> Any:
    span = max((end - start).days, 1)

    def x(d: dt.date) -> float:
        return left + (right - left) * (d - start).days / span

    svg.line(left, y_axis, right, y_axis, "ch-axis")
    for t in _date_ticks(start, end):
        svg.line(x(t), top, x(t), y_axis, "ch-grid")
        svg.text(x(t), y_axis + 16, t.strftime("%b %Y"), "ch-tick", "middle")
    return x


def _padded(dates: Sequence[dt.date], days: int = 20) -> tuple[dt.date, dt.date]:
    return min(dates) - dt.timedelta(days=days), max(dates) + dt.timedelta(days=days)


def charlson_chart(points: Sequence[dict[str, Any]]) -> Markup:
    """``points``: ``{"date", "charlson_index"}`` in time order: the index at each assessment."""
    left, top, plot_h, width = 56, 20, 150, 720
    pts = [(d, int(p.get("charlson_index") or 0)) for p in points if (d := _date(p.get("date")))]
    desc = "; ".join(f"{short_date(d)}: index {v}" for d, v in pts) or "No Charlson assessments."
    svg = Svg(width, top + plot_h + 40, "Charlson comorbidity index at each assessment", desc)
    y_max = max(12, *(v for _, v in pts)) if pts else 12

    def y(v: float) -> float:
        return top + plot_h * (1 - v / y_max)

    for tick in range(0, y_max + 1, 3):
        svg.line(left, y(tick), width - 16, y(tick), "ch-grid")
        svg.text(left - 6, y(tick) + 4, str(tick), "ch-tick", "end")
    svg.text(14, top + plot_h / 2, "index", "ch-axis-title", "middle", transform=f"rotate(-90 14 {top + plot_h / 2:.0f})")
    if not pts:
        return svg.render()
    x = _time_axis(svg, *_padded([d for d, _ in pts], 45), left, width - 16, y(0), top)
    if len(pts) > 1:
        path = "".join(f"{'M' if i == 0 else 'L'}{x(d):.1f} {y(v):.1f}" for i, (d, v) in enumerate(pts))
        svg.add("path", d=path, class_="ch-line")
    for d, v in pts:
        svg.add("circle", cx=x(d), cy=y(v), r=5.0, class_="ch-point")
        svg.text(x(d), y(v) - 10, str(v), "ch-value", "middle")
    return svg.render()


def admissions_chart(admissions: Sequence[dict[str, Any]], marks: Sequence[dict[str, Any]] = ()) -> Markup:
    """``admissions``: ``{"admitted", "discharged", "type", "specialty", "days"}``; ``marks``: ``{"date"}``
    drawn as triangles under the same time axis (the cycles' start dates)."""
    left, top, row_h, width = 250, 16, 30, 760
    rows = [(a, da, _date(a.get("discharged")) or da) for a in admissions if (da := _date(a.get("admitted")))]
    mark_dates = [d for m in marks if (d := _date(m.get("date")))]
    height = top + row_h * max(len(rows), 1) + (62 if mark_dates else 40)
    desc = "; ".join(f"{a.get('type')} admission, {a.get('specialty')}, {short_date(da)} to {short_date(dd)} "
                     f"({a.get('days')} days)" for a, da, dd in rows) or "No admissions."
    svg = Svg(width, height, "Hospital admissions over time", desc)
    if not rows:
        return svg.render()
    dates = [d for _, da, dd in rows for d in (da, dd)] + mark_dates
    axis_y = top + row_h * len(rows) + (12 if mark_dates else 4)
    x = _time_axis(svg, *_padded(dates), left, width - 16, axis_y, top)
    for i, (a, da, dd) in enumerate(rows):
        yy = top + i * row_h
        kind = "ch-adm-emergency" if "emerg" in str(a.get("type", "")).lower() else "ch-adm"
        svg.text(left - 8, yy + row_h / 2 + 4, f"{a.get('type')} · {a.get('specialty')}", "ch-label", "end")
        svg.rect(x(da), yy + 6, max(x(dd) - x(da), 4), row_h - 12, kind)
        svg.text(max(x(dd), x(da) + 4) + 5, yy + row_h / 2 + 4, f"{a.get('days')} d", "ch-value")
    for d in mark_dates:
        svg.add("path", d=f"M{x(d):.1f} {axis_y:.1f}l-5 -9h10z", class_="ch-mark")
    if mark_dates:
        _legend(svg, 8, height - 6, [("ch-adm", "admission"), ("ch-adm-emergency", "emergency admission"),
                                     ("ch-mark", "chemotherapy cycle start (triangle on the axis)")])
    return svg.render()


# --------------------------------------------------------------------------- risk


def risk_bars(rows: Sequence[dict[str, Any]], title: str, missing: str = "not known") -> Markup:
    """``rows``: ``{"label", "p", "highlight"}`` with p in [0, 1] (None: ``missing`` is written): one bar each."""
    left, top, row_h, width = 170, 24, 30, 640
    right = width - 70
    svg = Svg(width, top + row_h * max(len(rows), 1) + 30, title,
              "; ".join(f"{r['label']}: " + (f"{100 * r['p']:.0f}%" if r.get("p") is not None else missing)
                        for r in rows) or "Nothing to compare.")

    def x(p: float) -> float:
        return left + (right - left) * p

    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        svg.line(x(tick), top - 6, x(tick), top + row_h * len(rows), "ch-grid")
        svg.text(x(tick), top + row_h * len(rows) + 16, f"{tick:.0%}", "ch-tick", "middle")
    for i, r in enumerate(rows):
        yy = top + i * row_h
        svg.text(left - 8, yy + row_h / 2 + 4, r["label"], "ch-tick-strong" if r.get("highlight") else "ch-label",
                 "end")
        if r.get("p") is None:
            svg.text(left + 4, yy + row_h / 2 + 4, missing, "ch-tick")
            continue
        svg.rect(left, yy + 6, x(r["p"]) - left, row_h - 12, "ch-risk-mine" if r.get("highlight") else "ch-risk")
        svg.text(x(r["p"]) + 6, yy + row_h / 2 + 4, f"{100 * r['p']:.0f}%", "ch-value")
    return svg.render()


__all__ = ["GRADE_WORDS", "Svg", "admissions_chart", "charlson_chart", "dose_chart", "risk_bars", "short_date",
           "toxicity_heatmap"]
