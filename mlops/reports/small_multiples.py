"""Small multiples: one small line panel per series on a shared time axis, in one inline SVG.

For drift over time: a panel per feature (its deciding score per run, the threshold as a
dashed line, drifted runs in red, runs without enough data as hollow grey dots), and event
markers (alerts) as vertical lines at the same times in every panel.

>>> svg = small_multiples([{"title": "x (ks)", "threshold": 0.05,
...     "points": [("2026-01-01", 0.4, "no_drift"), ("2026-01-02", 0.01, "drift")]}],
...     markers=[("2026-01-02", "alert")])
>>> str(svg).startswith("<svg") and "alert" in str(svg)
True
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from mlops.reports.axes import (
    ALERT,
    CUR_FILL,
    GRID,
    MARKER,
    MUTED,
    Frame,
    clip,
    document,
    empty,
    esc,
    finite,
    line,
    nice_ticks,
    num,
    polyline_path,
    short,
    text,
    time_ticks,
    to_epoch,
)

_DOT = {"drift": ALERT, "insufficient_data": MUTED}


def small_multiples(panels: Sequence[Mapping[str, Any]], *, markers: Sequence[tuple[Any, str]] = (),
                    columns: int = 3, panel_width: int = 250, panel_height: int = 130,
                    title: str = "drift over time", ylabel: str = "score") -> Markup:
    """Panels ``{"title", "points": [(time, y, status)], "threshold": y | None}`` in a grid.

    Times are datetimes or ISO strings (shared x range across panels); each panel has its
    own y range (including its threshold). ``status`` colours the dots: ``drift`` red,
    ``insufficient_data`` hollow grey, anything else blue. ``markers`` are ``(time, label)``.
    """
    clean = []
    for p in panels:
        pts = [(to_epoch(t), finite(y), s) for t, y, s in p.get("points", [])]
        clean.append((str(p.get("title", "")), [q for q in pts if q[0] is not None],
                      finite(p.get("threshold"))))
    xs = [x for _, pts, _ in clean for x, _, _ in pts]
    mks = [(to_epoch(t), lab) for t, lab in markers]
    mks = [(x, lab) for x, lab in mks if x is not None]
    if not xs:
        return empty(title, "no runs in the history yet")
    x0, x1 = min(xs + [x for x, _ in mks]), max(xs + [x for x, _ in mks])
    if x0 == x1:
        x0, x1 = x0 - 3600, x1 + 3600
    columns = max(1, min(columns, len(clean)))
    rows = math.ceil(len(clean) / columns)
    width, height = columns * panel_width, rows * panel_height + 18
    parts = [text(4, 12, f"{ylabel} per run; dashed: threshold; red: drift; hollow: too little "
                         f"data" + ("; vertical lines: alerts" if mks else ""), size=10, fill=MUTED)]
    xt = time_ticks(x0, x1, target=3)
    for i, (name, pts, thr) in enumerate(clean):
        ox, oy = (i % columns) * panel_width, 18 + (i // columns) * panel_height
        parts.append(_panel(name, pts, thr, mks, xt, ox, oy, panel_width, panel_height, x0, x1))
    return document(width, height, title, parts)


def _panel(name: str, pts: list, thr: float | None, mks: list, xt: list, ox: float, oy: float,
           w: float, h: float, x0: float, x1: float) -> str:
    ys = [y for _, y, _ in pts if y is not None] + ([thr] if thr is not None else [])
    yt = nice_ticks(min(ys), max(ys), 3) if ys else [0.0, 1.0]
    f = Frame(w, h, left=44, right=10, top=18, bottom=26, x0=x0, x1=x1, y0=yt[0], y1=yt[-1])
    out = [f'<g transform="translate({num(ox)} {num(oy)})"><title>{esc(name)}</title>',
           text(f.left, 12, clip(name, 34), size=11, weight="600")]
    for t in (yt[0], yt[-1]):
        out.append(line(f.left, f.sy(t), f.left + f.pw, f.sy(t), stroke=GRID))
        out.append(text(f.left - 4, f.sy(t) + 3.5, short(t, 3), anchor="end", size=9, fill=MUTED))
    base = f.top + f.ph
    for v, lab in xt:
        out.append(line(f.sx(v), base, f.sx(v), base + 3))
        out.append(text(f.sx(v), base + 13, lab, anchor="middle", size=9, fill=MUTED))
    for x, lab in mks:
        out.append(f"<g><title>{esc(lab)}</title>"
                   + line(f.sx(x), f.top, f.sx(x), base, stroke=MARKER, dash="3 3") + "</g>")
    if thr is not None:
        out.append(line(f.left, f.sy(thr), f.left + f.pw, f.sy(thr), stroke=ALERT, width=1.1,
                        dash="5 3"))
    drawn = [(f.sx(x), f.sy(y)) for x, y, _ in pts if y is not None]
    if len(drawn) > 1:
        out.append(f'<path d="{polyline_path(drawn)}" fill="none" stroke="{CUR_FILL}" '
                   f'stroke-width="1.4"/>')
    for x, y, status in pts:
        if y is None:
            continue
        colour = _DOT.get(str(status), CUR_FILL)
        fill = "#fff" if status == "insufficient_data" else colour
        out.append(f'<circle cx="{num(f.sx(x))}" cy="{num(f.sy(y))}" r="2.8" fill="{fill}" '
                   f'stroke="{colour}"><title>{esc(f"{short(y, 4)} ({status})")}</title></circle>')
    out.append(line(f.left, base, f.left + f.pw, base))
    out.append("</g>")
    return "".join(out)
