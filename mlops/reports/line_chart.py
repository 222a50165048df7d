"""Line charts for reports (re-exported as :func:`mlops.reports.svg.line_chart`).

Lines over numbers or time, broken at missing values, with dashed threshold lines and
dashed vertical event markers. Long series are decimated per pixel column by
:func:`mlops.reports.axes.polyline_path`, so a 20k-point chart stays small.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from mlops.reports.axes import (
    ALERT,
    MARKER,
    PALETTE,
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
    short,
    text,
    tick_label,
    time_ticks,
    to_epoch,
    x_axis,
    y_axis,
)

Points = list[tuple[float | None, float | None]]
MAX_DOTS = 60  # beyond this many points a series draws dots only where a point stands alone


def line_chart(series: Mapping[str, Sequence[tuple[Any, Any]]], *, xlabel: str, ylabel: str,
               thresholds: Sequence[tuple[float, str]] = (), markers: Sequence[tuple[Any, str]] = (),
               x_is_time: bool = False, title: str | None = None, width: int = 720,
               height: int = 300) -> Markup:
    """Lines over x (numbers, or datetimes/ISO strings with ``x_is_time=True``). A ``None``/NaN
    y breaks the line. ``thresholds`` draw dashed horizontal lines, ``markers`` dashed
    vertical event lines (e.g. a detector hit).

    >>> line_chart({"AUC": [(1, 0.91), (2, None), (3, 0.88)]}, xlabel="week", ylabel="AUC",
    ...            thresholds=[(0.85, "gate")])  # doctest: +SKIP
    """
    title = title or f"{ylabel} over {xlabel}"
    conv = to_epoch if x_is_time else finite
    data = {str(k): [(conv(x), finite(y)) for x, y in pts] for k, pts in series.items()}
    mks = [(conv(x), lab) for x, lab in markers]
    mks = [(x, lab) for x, lab in mks if x is not None]
    ths = [(float(y), lab) for y, lab in thresholds if finite(y) is not None]
    if not any(y is not None for pts in data.values() for _, y in pts):
        return empty(title)
    f, parts = _frame_and_axes(data, mks, ths, xlabel=xlabel, ylabel=ylabel, x_is_time=x_is_time,
                               width=width, height=height)
    items = []
    for i, (name, pts) in enumerate(data.items()):
        colour = PALETTE[i % len(PALETTE)]
        items.append((name, colour, "line"))
        parts += _series(f, name, pts, colour)
    parts += _thresholds(f, ths)
    parts += _markers(f, mks)
    parts += legend(items + [(lab, ALERT, "dash") for _, lab in ths[:1]], f.left, 14,
                    max_x=width)
    return document(width, height, title, parts)


def _frame_and_axes(data: dict[str, Points], mks: list[tuple[float, str]],
                    ths: list[tuple[float, str]], *, xlabel: str, ylabel: str, x_is_time: bool,
                    width: int, height: int) -> tuple[Frame, list[str]]:
    """The plot frame and both axes: x spans points and markers, y points and thresholds."""
    xs = [x for pts in data.values() for x, _ in pts if x is not None] + [x for x, _ in mks]
    ys = [y for pts in data.values() for _, y in pts if y is not None] + [y for y, _ in ths]
    x0, x1 = min(xs), max(xs)
    if x0 == x1:  # one x value: give the axis some width
        x0, x1 = x0 - 1, x1 + 1
    yt = nice_ticks(min(ys), max(ys), 5)
    # more than five series wrap the legend onto a second row: leave room for it
    f = Frame(width, height, left=62, right=18, top=34 + 15 * (len(data) > 5), bottom=44,
              x0=x0, x1=x1, y0=yt[0], y1=yt[-1])
    parts = y_axis(f, yt, ylabel)
    if x_is_time:
        xt = time_ticks(x0, x1)
        xlabel = f"{xlabel} (UTC)"
    else:
        ticks = nice_ticks(x0, x1, 6, extend=False)
        xt = [(t, tick_label(t, ticks)) for t in ticks]
    return f, parts + x_axis(f, xt, xlabel)


def _segments(f: Frame, pts: Points) -> list[list[tuple[float, float]]]:
    """Runs of present points in pixel coordinates; a missing x or y ends a run."""
    segments, cur = [], []
    for x, y in pts:
        if x is None or y is None:
            if cur:
                segments.append(cur)
            cur = []
        else:
            cur.append((f.sx(x), f.sy(y)))
    if cur:
        segments.append(cur)
    return segments


def _series(f: Frame, name: str, pts: Points, colour: str) -> list[str]:
    """One series as a group: its line (runs of two or more points) and its dots."""
    segments = _segments(f, pts)
    d = "".join(polyline_path(seg) for seg in segments if len(seg) > 1)
    parts = [f"<g><title>{esc(name)}</title>"]
    if d:
        parts.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.8" '
                     f'stroke-linejoin="round" stroke-linecap="round"/>')
    dots = [p for seg in segments for p in seg] if len(pts) <= MAX_DOTS else \
        [seg[0] for seg in segments if len(seg) == 1]  # isolated points stay visible
    parts += [f'<circle cx="{num(x)}" cy="{num(y)}" r="2.6" fill="{colour}"/>' for x, y in dots]
    parts.append("</g>")
    return parts


def _thresholds(f: Frame, ths: list[tuple[float, str]]) -> list[str]:
    """Dashed horizontal lines labelled with their name and value."""
    parts = []
    for y, lab in ths:
        sy = f.sy(y)
        parts.append(line(f.left, sy, f.left + f.pw, sy, stroke=ALERT, width=1.2, dash="6 4"))
        parts.append(text(f.left + f.pw - 4, sy - 4, f"{lab} ({short(y, 4)})", anchor="end",
                          size=11, fill=ALERT, halo=True))
    return parts


def _markers(f: Frame, mks: list[tuple[float, str]]) -> list[str]:
    """Dashed vertical event lines; labels stagger over three rows so neighbours don't collide."""
    parts = []
    for j, (x, lab) in enumerate(mks):
        sx = f.sx(x)
        parts.append(f"<g><title>{esc(lab)}</title>")
        parts.append(line(sx, f.top, sx, f.top + f.ph, stroke=MARKER, width=1.2, dash="3 3"))
        # labels near the right edge grow leftwards to stay inside the picture
        anchor, dx = ("end", -3) if sx > f.left + f.pw * 0.75 else ("start", 3)
        parts.append(text(sx + dx, f.top + 11 + 12 * (j % 3), clip(lab, 30), anchor=anchor,
                          size=11, fill=MARKER, halo=True))
        parts.append("</g>")
    return parts
