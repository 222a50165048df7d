"""Inline SVG charts for reports, drawn by our own code (no JS, no CDN).

Every function returns ``markupsafe.Markup`` built only from escaped values, with a
``<title>``/``aria-label``, axis labels and nicely rounded ticks; coordinates are
rounded to one decimal. Put a chart in a template with ``{{ m.chart(svg, "caption") }}``.

>>> svg = bar_chart([("amount", 0.31), ("country", 0.02)], xlabel="PSI", ylabel="feature",
...                 threshold=(0.2, "alert"))
>>> str(svg).startswith("<svg")
True
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

from markupsafe import Markup

from mlops.reports.axes import (
    ALERT,
    AXIS,
    CUR_FILL,
    GRID,
    INK,
    MUTED,
    PALETTE,
    REF_FILL,
    Frame,
    clip,
    document,
    empty,
    esc,
    finite,
    legend,
    line,
    nice_ticks,
    num,
    polyline_path,
    rect,
    short,
    text,
    text_width,
    tick_label,
    x_axis,
    y_axis,
)
from mlops.reports.line_chart import line_chart as line_chart  # re-exported: svg.line_chart


def _bin_labels(bins: Sequence[Any], n: int) -> list[str]:
    """Labels for ``n`` bins from categories or numeric edges (inner edges: open outer bins)."""
    bins = list(bins)
    numeric = bool(bins) and all(isinstance(b, Real) and not isinstance(b, bool) for b in bins)
    if not numeric:
        if len(bins) != n:
            raise ValueError(f"The 'edges_or_categories' parameter must list one category per "
                             f"bin ({n}); got {len(bins)} instead")
        return [str(b) for b in bins]
    e = [short(float(b)) for b in bins]
    if len(bins) == n - 1:  # inner edges: first and last bins are open to -inf/+inf
        if n == 1:
            return ["all"]
        return [f"< {e[0]}"] + [f"[{a}, {b})" for a, b in zip(e, e[1:])] + [f">= {e[-1]}"]
    if len(bins) == n + 1:  # full edges
        return [f"[{a}, {b})" for a, b in zip(e, e[1:])]
    raise ValueError(f"The 'edges_or_categories' parameter must hold {n - 1} inner edges or "
                     f"{n + 1} full edges for {n} bins; got {len(bins)} numbers instead")


def histogram_overlay(edges_or_categories: Sequence[Any], ref_shares: Sequence[float],
                      cur_shares: Sequence[float], *, xlabel: str, ylabel: str = "share of rows",
                      labels: tuple[str, str] = ("reference", "current"), title: str | None = None,
                      percent: bool | None = None, width: int = 640, height: int = 280) -> Markup:
    """Reference vs current shares per bin: wide light bars (reference) under narrow dark
    bars (current). Numeric bins given as inner edges are labelled ``< e1`` ... ``>= ek``.

    >>> histogram_overlay([0.5, 1.5], [0.2, 0.5, 0.3], [0.1, 0.4, 0.5], xlabel="amount (EUR)")  # doctest: +SKIP
    """
    ref = [finite(v) or 0.0 for v in ref_shares]
    cur = [finite(v) or 0.0 for v in cur_shares]
    title = title or f"{ylabel} by {xlabel}: {labels[0]} vs {labels[1]}"
    if len(ref) != len(cur):
        raise ValueError(f"The 'cur_shares' parameter must have as many bins as 'ref_shares' "
                         f"({len(ref)}); got {len(cur)} instead")
    if not ref:
        return empty(title)
    names = _bin_labels(edges_or_categories, len(ref))
    top_v = max(ref + cur) or 1.0
    percent = top_v <= 1.0 if percent is None else percent
    ticks = nice_ticks(0.0, top_v, 4)
    shown = [clip(s, 18) for s in names]
    f, rotate, every = _histogram_frame(shown, ticks, width, height)
    parts = y_axis(f, ticks, ylabel, percent=percent)
    slot = f.pw / len(ref)
    base = f.sy(0)
    for i, (name, r, c) in enumerate(zip(names, ref, cur)):
        x = f.left + i * slot
        tip = f"{name}: {labels[0]} {_val(r, percent)}, {labels[1]} {_val(c, percent)}"
        parts += _overlay_bars(f, x, slot, r, c, tip)
        if i % every == 0:
            parts.append(_bin_label(x + slot / 2, base, shown[i], rotate))
    parts.append(line(f.left, base, f.left + f.pw, base))
    parts.append(text(f.left + f.pw / 2, f.height - 8, xlabel, anchor="middle"))
    parts += legend([(labels[0], REF_FILL, "box"), (labels[1], CUR_FILL, "box")], f.left, 14,
                    max_x=width)
    return document(width, f.height, title, parts)


def _histogram_frame(shown: list[str], ticks: list[float], width: int, height: int
                     ) -> tuple[Frame, bool, int]:
    """Frame of a histogram with bin labels ``shown``: (frame, rotate labels?, label every k-th).

    Labels wider than their bin are rotated, and the bottom margin grows to hold them.
    """
    n = len(shown)
    slot = (width - 80) / n
    longest = max(text_width(s, 11) for s in shown)
    rotate = longest > slot - 4
    every = max(1, math.ceil(n / 40))
    bottom = 22 + (longest * 0.62 if rotate else 10) + 14
    # rotated labels hang left of their bin: keep the first one inside the picture
    left = max(58.0, longest * 0.77 - slot / 2 + 6) if rotate else 58.0
    f = Frame(width, height + (bottom - 44), left=left, right=16, top=28, bottom=bottom,
              y0=0.0, y1=ticks[-1])
    return f, rotate, every


def _overlay_bars(f: Frame, x: float, slot: float, ref: float, cur: float, tip: str) -> list[str]:
    """One bin: a wide light reference bar under a narrow dark current bar, with a tooltip."""
    base = f.sy(0)
    return [f"<g><title>{esc(tip)}</title>",
            rect(x + slot * 0.08, f.sy(ref), slot * 0.84, base - f.sy(ref), REF_FILL),
            rect(x + slot * 0.3, f.sy(cur), slot * 0.4, base - f.sy(cur), CUR_FILL,
                 extra=' fill-opacity="0.9"'),
            "</g>"]


def _bin_label(cx: float, base: float, label: str, rotate: bool) -> str:
    """A bin label under the axis, centred on ``cx`` (or rotated to end there)."""
    if rotate:
        return text(cx + 3, base + 10, label, anchor="end", size=11, fill=MUTED, rotate=-40)
    return text(cx, base + 15, label, anchor="middle", size=11, fill=MUTED)


def _val(v: float, percent: bool) -> str:
    return f"{v * 100:.1f}%" if percent else short(v, 4)


def forest_plot(rows: Sequence[Mapping[str, Any]], *, xlabel: str, ref_line: float = 0.0,
                title: str | None = None, width: int = 680) -> Markup:
    """Effects with confidence intervals, one row each (``label, estimate, low, high``).
    Intervals that exclude ``ref_line`` are drawn in colour, the others in grey.

    >>> forest_plot([{"label": "B vs A", "estimate": 0.02, "low": 0.005, "high": 0.035}],
    ...             xlabel="lift in conversion rate")  # doctest: +SKIP
    """
    title = title or f"{xlabel} with confidence intervals"
    clean = [{"label": str(r.get("label", "")), "est": finite(r.get("estimate")),
              "lo": finite(r.get("low")), "hi": finite(r.get("high"))} for r in rows]
    vals = [v for r in clean for v in (r["est"], r["lo"], r["hi"]) if v is not None]
    if not vals:
        return empty(title)
    ticks = nice_ticks(min(vals + [ref_line]), max(vals + [ref_line]), 5)
    names = [clip(r["label"], 30) for r in clean]
    left = min(max(text_width(s, 12) for s in names) + 18, 210)
    height = 30 + 28 * len(clean) + 44
    f = Frame(width, height, left=left, right=150, top=24, bottom=44,
              x0=ticks[0], x1=ticks[-1], y0=0, y1=len(clean))
    parts = [rect(0, f.top + 28 * i, width, 28, "#f8fafc") for i in range(1, len(clean), 2)]
    parts.append(text(f.left + f.pw + 8, 16, "estimate [interval]", size=11, fill=MUTED))
    parts += x_axis(f, [(t, tick_label(t, ticks)) for t in ticks], xlabel, grid=True)
    parts.append(line(f.sx(ref_line), f.top, f.sx(ref_line), f.top + f.ph, stroke=INK, dash="4 3"))
    for i, (r, name) in enumerate(zip(clean, names)):
        cy = f.top + 28 * i + 14
        sig = (r["lo"] is not None and r["hi"] is not None
               and (r["lo"] > ref_line or r["hi"] < ref_line))
        colour = CUR_FILL if sig else MUTED
        note = f"{short(r['est'], 3)} [{short(r['lo'], 3)}, {short(r['hi'], 3)}]"
        parts.append(f"<g><title>{esc(r['label'] + ': ' + note)}</title>")
        parts.append(text(f.left - 10, cy + 4, name, anchor="end", size=12))
        if r["lo"] is not None and r["hi"] is not None:
            a, b = f.sx(r["lo"]), f.sx(r["hi"])
            parts += [line(a, cy, b, cy, stroke=colour, width=2),
                      line(a, cy - 5, a, cy + 5, stroke=colour, width=2),
                      line(b, cy - 5, b, cy + 5, stroke=colour, width=2)]
        if r["est"] is not None:
            parts.append(rect(f.sx(r["est"]) - 4.5, cy - 4.5, 9, 9, colour))
        parts.append(text(f.left + f.pw + 8, cy + 4, note, size=11, fill=INK if sig else MUTED))
        parts.append("</g>")
    return document(width, height, title, parts)


def calibration_curve(points: Sequence[tuple[float, float, Any]], *,
                      xlabel: str = "mean predicted probability",
                      ylabel: str = "observed frequency", title: str | None = None,
                      size: int = 320) -> Markup:
    """Reliability diagram: observed frequency against mean prediction per bin, the
    diagonal as reference; dot area grows with the bin's row count.

    >>> calibration_curve([(0.1, 0.08, 500), (0.5, 0.55, 120), (0.9, 0.85, 40)])  # doctest: +SKIP
    """
    title = title or f"calibration: {ylabel} vs {xlabel}"
    pts = []
    for t in points:
        t = tuple(t)
        p, o, c = finite(t[0]), finite(t[1]), finite(t[2]) if len(t) > 2 else None
        if p is not None and o is not None:
            pts.append((p, o, c))
    pts.sort(key=lambda t: t[0])
    width, height = size + 76, size + 72
    f = Frame(width, height, left=58, right=18, top=28, bottom=44)
    ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    parts = y_axis(f, ticks, ylabel)
    parts += x_axis(f, [(t, tick_label(t, ticks)) for t in ticks], xlabel, grid=True)
    parts.append(line(f.sx(0), f.sy(0), f.sx(1), f.sy(1), stroke=AXIS, width=1.2, dash="5 4"))
    if pts:
        parts.append(f'<path d="{polyline_path([(f.sx(p), f.sy(o)) for p, o, _ in pts])}" fill="none" '
                     f'stroke="{CUR_FILL}" stroke-width="1.8"/>')
        top = max((c or 0) for _, _, c in pts) or 1.0
        for p, o, c in pts:
            r = 2.5 + 5.5 * math.sqrt((c or 0) / top) if c is not None else 3.0
            tip = f"predicted {p:.3f}, observed {o:.3f}" + (f", {c:,.0f} rows" if c is not None else "")
            parts.append(f'<circle cx="{num(f.sx(p))}" cy="{num(f.sy(o))}" r="{num(r)}" '
                         f'fill="{CUR_FILL}" fill-opacity="0.75"><title>{esc(tip)}</title></circle>')
    else:
        parts.append(text(f.sx(0.5), f.sy(0.5), "no data", anchor="middle", fill=MUTED))
    parts += legend([("model", CUR_FILL, "line"), ("perfectly calibrated", AXIS, "dash")],
                    f.left, 14, max_x=width)
    return document(width, height, title, parts)


def _blend(t: float) -> str:
    """White (t=0) to dark blue (t=1)."""
    lo, hi = (248, 250, 252), (29, 78, 216)
    return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(lo, hi))


def confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], *,
                     xlabel: str = "predicted class", ylabel: str = "actual class",
                     title: str | None = None) -> Markup:
    """Counts as a heat grid; colour is the share of the actual class (row-normalised).

    >>> confusion_matrix([[90, 10], [5, 45]], ["legit", "fraud"])  # doctest: +SKIP
    """
    title = title or f"confusion matrix: {ylabel} vs {xlabel}"
    n = len(labels)
    if len(matrix) != n or any(len(r) != n for r in matrix):
        raise ValueError(f"The 'matrix' parameter must be {n}x{n} to match 'labels'; got "
                         f"{[len(r) for r in matrix]} row lengths instead")
    if n == 0:
        return empty(title)
    cell = max(22.0, min(64.0, 420.0 / n))
    names = [clip(s, 16) for s in labels]
    lab_w = max(text_width(s, 11) for s in names)
    rotate = lab_w > cell - 4  # class names wider than a column are rotated under it
    left = 30 + lab_w + 10
    top = 24
    bottom = 30 + (lab_w * 0.7 if rotate else 16) + 6
    width, height = left + n * cell + 20, top + n * cell + bottom
    parts = []
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        for j, value in enumerate(row):
            parts += _matrix_cell(left + j * cell, top + i * cell, cell, value, value / total,
                                  actual=labels[i], predicted=labels[j], diagonal=i == j)
    for k, name in enumerate(names):
        parts.append(text(left - 6, top + k * cell + cell / 2 + 4, name, anchor="end", size=11))
        cx, base = left + k * cell + cell / 2, top + n * cell + 12
        parts.append(text(cx + 3, base, name, anchor="end", size=11, rotate=-40) if rotate else
                     text(cx, base + 2, name, anchor="middle", size=11))
    parts.append(text(left + n * cell / 2, height - 8, xlabel, anchor="middle"))
    parts.append(text(13, top + n * cell / 2, ylabel, anchor="middle", rotate=-90))
    return document(width, height, title, parts)


def _matrix_cell(x: float, y: float, cell: float, value: int, share: float, *,
                 actual: str, predicted: str, diagonal: bool) -> list[str]:
    """One heat-grid cell: colour by ``share`` of the actual class, the count, and (when the
    cell is big enough) the share under it."""
    ink = "#ffffff" if share > 0.55 else INK  # white on dark cells stays readable
    tip = f"actual {actual}, predicted {predicted}: {value:,} ({share:.1%} of actual {actual})"
    big = cell >= 44
    parts = [f"<g><title>{esc(tip)}</title>",
             rect(x, y, cell - 1, cell - 1, _blend(share)),
             text(x + cell / 2, y + cell / 2 + (0 if big else 4), short(value, 4), anchor="middle",
                  size=13 if big else 10, fill=ink, weight="600" if diagonal else None)]
    if big:
        parts.append(text(x + cell / 2, y + cell / 2 + 14, f"{share:.0%}", anchor="middle",
                          size=10, fill=ink))
    parts.append("</g>")
    return parts


def bar_chart(items: Sequence[tuple[str, Any]], *, xlabel: str, ylabel: str,
              threshold: float | tuple[float, str] | None = None, higher_is_worse: bool = True,
              title: str | None = None, width: int = 640) -> Markup:
    """Horizontal bars (label, value); bars past ``threshold`` are red (``higher_is_worse``
    says which side is bad). ``threshold`` may be a number or ``(number, label)``.

    >>> bar_chart([("amount", 0.31), ("country", 0.02)], xlabel="PSI", ylabel="feature",
    ...           threshold=(0.2, "alert"))  # doctest: +SKIP
    """
    title = title or f"{xlabel} by {ylabel}"
    rows = [(str(k), finite(v)) for k, v in items]
    thr, thr_label = (threshold if isinstance(threshold, (tuple, list)) else (threshold, "threshold"))
    thr = finite(thr)
    vals = [v for _, v in rows if v is not None] + ([thr] if thr is not None else [])
    if not vals or not rows:  # a threshold alone is no chart
        return empty(title)
    ticks = nice_ticks(min(vals + [0.0]), max(vals + [0.0]), 5)
    names = [clip(k, 28) for k, _ in rows]
    left = min(max(text_width(s, 12) for s in names) + 34, 220)
    height = 34 + 22 * len(rows) + 44
    f = Frame(width, height, left=left, right=56, top=30, bottom=44, x0=ticks[0], x1=ticks[-1])
    parts = x_axis(f, [(t, tick_label(t, ticks)) for t in ticks], xlabel, grid=True)
    zero = f.sx(0.0)
    for i, ((label, v), name) in enumerate(zip(rows, names)):
        cy = f.top + 22 * i + 11
        bad = thr is not None and v is not None and (v > thr if higher_is_worse else v < thr)
        parts.append(f"<g><title>{esc(label)}: {esc(short(v, 4))}</title>")
        parts.append(text(f.left - 8, cy + 4, name, anchor="end"))
        if v is not None:
            a, b = sorted((zero, f.sx(v)))
            parts.append(rect(a, cy - 7, b - a, 14, ALERT if bad else CUR_FILL))
        vx = f.sx(v) if v is not None else zero
        parts.append(text(vx + (4 if (v or 0) >= 0 else -4), cy + 4, short(v, 3),
                          anchor="start" if (v or 0) >= 0 else "end", size=11, fill=MUTED))
        parts.append("</g>")
    parts.append(line(zero, f.top, zero, f.top + f.ph))
    if thr is not None:
        tx = f.sx(thr)
        parts.append(line(tx, f.top - 6, tx, f.top + f.ph, stroke=ALERT, width=1.2, dash="5 3"))
        parts.append(text(tx, f.top - 10, f"{thr_label} {short(thr, 4)}", anchor="middle",
                          size=11, fill=ALERT))
    parts.append(text(12, f.top + f.ph / 2, ylabel, anchor="middle", rotate=-90, fill=MUTED))
    return document(width, height, title, parts)


def sparkline_hist(counts: Sequence[Any], *, width: int = 80, height: int = 22,
                   title: str | None = None, colour: str = "#64748b") -> Markup:
    """A tiny fixed-size histogram for a table cell (no axes; the numbers are in the title).

    >>> sparkline_hist([1, 4, 9, 4, 1])  # doctest: +SKIP
    """
    vals = [max(finite(c) or 0.0, 0.0) for c in counts]
    top = max(vals, default=0.0)
    title = title or f"histogram of {len(vals)} bins, largest bin {short(top, 4)}"
    parts = [line(0, height - 0.5, width, height - 0.5, stroke=GRID)]
    if vals and top > 0:
        w = width / len(vals)
        bar = num(max(w - (1.0 if w >= 4 else 0.0), 0.6))
        # one path for all bars keeps a table of 100 sparklines small
        d = "".join(f"M{num(i * w)} {num(height - 1)}v-{num((height - 2) * v / top)}h{bar}V{num(height - 1)}z"
                    for i, v in enumerate(vals) if v > 0)
        parts.append(f'<path d="{d}" fill="{colour}"/>')
    return document(width, height, title, parts, fixed=True)


def scatter(points: Sequence[tuple[Any, Any]], *, xlabel: str, ylabel: str, diagonal: bool = False,
            hline: float | None = None, title: str | None = None, width: int = 480,
            height: int = 360) -> Markup:
    """Points (x, y); ``diagonal`` draws y = x (predicted vs actual), ``hline`` a dashed
    horizontal line (e.g. zero residual). Non-finite points are skipped.

    >>> scatter([(1, 1.1), (2, 1.9)], xlabel="predicted", ylabel="actual", diagonal=True)  # doctest: +SKIP
    """
    title = title or f"{ylabel} vs {xlabel}"
    pts = [(finite(x), finite(y)) for x, y in points]
    pts = [(x, y) for x, y in pts if x is not None and y is not None]
    if not pts:
        return empty(title)
    xs, ys = [x for x, _ in pts], [y for _, y in pts]
    lo_x, hi_x, lo_y, hi_y = min(xs), max(xs), min(ys), max(ys)
    if diagonal:  # same scale on both axes so the identity line is the diagonal
        lo_x = lo_y = min(lo_x, lo_y)
        hi_x = hi_y = max(hi_x, hi_y)
    if hline is not None:
        lo_y, hi_y = min(lo_y, hline), max(hi_y, hline)
    xt, yt = nice_ticks(lo_x, hi_x, 5), nice_ticks(lo_y, hi_y, 5)
    f = Frame(width, height, left=62, right=18, top=24, bottom=44,
              x0=xt[0], x1=xt[-1], y0=yt[0], y1=yt[-1])
    parts = y_axis(f, yt, ylabel) + x_axis(f, [(t, tick_label(t, xt)) for t in xt], xlabel)
    if diagonal:
        a, b = max(f.x0, f.y0), min(f.x1, f.y1)
        parts.append(line(f.sx(a), f.sy(a), f.sx(b), f.sy(b), stroke=ALERT, width=1.2, dash="6 4"))
    if hline is not None:
        parts.append(line(f.left, f.sy(hline), f.left + f.pw, f.sy(hline), stroke=ALERT, width=1.2,
                          dash="6 4"))
    colour = PALETTE[0]
    parts += [f'<circle cx="{num(f.sx(x))}" cy="{num(f.sy(y))}" r="2" fill="{colour}" '
              f'fill-opacity="0.45"/>' for x, y in pts]
    return document(width, height, title, parts)
