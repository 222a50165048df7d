"""SVG building blocks for :mod:`mlops.reports.svg`: escaping, nice ticks, scales, axes.

Every piece of text goes through :func:`esc`; coordinates are rounded to one decimal
(:func:`num`) so charts stay small.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

FONT = "system-ui, 'Segoe UI', Roboto, sans-serif"
BASE_SIZE = 11  # font-size set on the <svg> root; text at this size needs no attribute
INK, MUTED, GRID, AXIS = "#1f2937", "#6b7280", "#e5e7eb", "#9ca3af"
REF_FILL, CUR_FILL = "#cbd5e1", "#2563eb"
ALERT, MARKER = "#dc2626", "#b45309"
PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
CHAR_W = 0.58  # average glyph width in em, to size margins for labels


def esc(value: object) -> str:
    """Escape any value for use as SVG text or attribute content."""
    return str(escape(str(value)))


def num(x: float) -> str:
    """A coordinate rounded to one decimal, without a trailing '.0'."""
    r = round(float(x), 1)
    return str(int(r)) if r == int(r) else f"{r:.1f}"


def text_width(s: str, size: float = 12) -> float:
    """Rough rendered width of ``s`` in px (no font metrics available server-side)."""
    return len(s) * size * CHAR_W


def clip(s: str, max_chars: int) -> str:
    """Shorten ``s`` to ``max_chars`` with an ellipsis."""
    s = str(s)
    return s if len(s) <= max_chars else s[: max(max_chars - 1, 1)] + "…"


def short(v: float | None, sig: int = 3) -> str:
    """Compact number for axis labels and bin edges: 0.123, 12.5, 1.2k, 3.4M."""
    if v is None or not math.isfinite(v):
        return "—"
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.{sig}g}G"
    if a >= 1e6:
        return f"{v / 1e6:.{sig}g}M"
    if a >= 1e4:
        return f"{v / 1e3:.{sig}g}k"
    if a >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{sig}g}" if a >= 1e-3 or a == 0 else f"{v:.{max(sig - 1, 1)}e}"


def nice_step(span: float, target: int = 5) -> float:
    """A 1/2/2.5/5 x 10^k step giving about ``target`` intervals over ``span``."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag * (1 + 1e-9):
            return m * mag
    return 10 * mag


def nice_ticks(lo: float, hi: float, target: int = 5, *, extend: bool = True) -> list[float]:
    """Ticks on a nice step. ``extend=True`` widens the range to the enclosing ticks.

    >>> nice_ticks(0.03, 0.91)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, target)
    start = math.floor(lo / step + 1e-9) if extend else math.ceil(lo / step - 1e-9)
    stop = math.ceil(hi / step - 1e-9) if extend else math.floor(hi / step + 1e-9)
    return [round(k * step, 12) for k in range(start, stop + 1)]


def tick_label(v: float, ticks: Sequence[float], percent: bool = False) -> str:
    """Label a tick with just enough decimals for its step."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(v) or 1.0
    if percent:
        v, step = v * 100, step * 100
    if max(abs(ticks[0]), abs(ticks[-1])) * (100 if percent else 1) >= 1e4 and not percent:
        return short(v)
    # fewest decimals that show the step exactly (0.25 -> 2, 2.5 -> 1, 20 -> 0)
    decimals = next((d for d in range(7) if abs(step * 10**d - round(step * 10**d)) < 1e-6), 6)
    out = f"{v:,.{decimals}f}"
    if out.startswith("-") and float(out.replace(",", "")) == 0:
        out = out[1:]
    return out + ("%" if percent else "")


_TIME_STEPS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600,
               86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 365 * 86400)


def to_epoch(value: object) -> float | None:
    """Seconds since the epoch for a datetime/date/ISO string/number (naive = UTC)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return stamp.timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc).timestamp()
    if isinstance(value, str):
        return to_epoch(dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    if hasattr(value, "astype") and "datetime64" in str(getattr(value, "dtype", "")):
        return float(value.astype("datetime64[ms]").astype("int64")) / 1000.0  # type: ignore[attr-defined]
    return float(value)  # type: ignore[arg-type]


def time_ticks(lo: float, hi: float, target: int = 6) -> list[tuple[float, str]]:
    """Ticks on round UTC times (minutes, hours, days, weeks) with matching labels."""
    span = max(hi - lo, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= target), _TIME_STEPS[-1])
    first = math.ceil(lo / step) * step
    if step >= 86400:
        pattern = "%Y-%m-%d"
    elif span <= 86400 and dt.datetime.fromtimestamp(lo, dt.timezone.utc).date() == \
            dt.datetime.fromtimestamp(hi, dt.timezone.utc).date():
        pattern = "%H:%M:%S" if step < 60 else "%H:%M"
    else:
        pattern = "%m-%d %H:%M"
    out, t = [], first
    while t <= hi + 1e-6:
        out.append((t, dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime(pattern)))
        t += step
    return out


@dataclass
class Frame:
    """A plot area inside a ``width`` x ``height`` SVG, with linear x/y scales."""

    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float
    x0: float = 0.0
    x1: float = 1.0
    y0: float = 0.0
    y1: float = 1.0

    @property
    def pw(self) -> float:
        return self.width - self.left - self.right

    @property
    def ph(self) -> float:
        return self.height - self.top - self.bottom

    def sx(self, v: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (v - self.x0) / span * self.pw

    def sy(self, v: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.top + self.ph - (v - self.y0) / span * self.ph


def text(x: float, y: float, content: object, *, anchor: str = "start", size: float | None = 11,
         fill: str = INK, weight: str | None = None, rotate: float | None = None,
         baseline: str | None = None, halo: bool = False) -> str:
    """An escaped ``<text>`` element; ``halo`` outlines it in white to stay legible over data."""
    attrs = [f'x="{num(x)}"', f'y="{num(y)}"']
    if anchor != "start":
        attrs.append(f'text-anchor="{anchor}"')
    if size and size != BASE_SIZE:
        attrs.append(f'font-size="{size}"')
    if fill != INK:  # INK is inherited from the <svg> root
        attrs.append(f'fill="{fill}"')
    if weight:
        attrs.append(f'font-weight="{weight}"')
    if baseline:
        attrs.append(f'dominant-baseline="{baseline}"')
    if halo:
        attrs.append('stroke="#fff" stroke-width="3" paint-order="stroke" stroke-linejoin="round"')
    if rotate is not None:
        attrs.append(f'transform="rotate({num(rotate)} {num(x)} {num(y)})"')
    return f"<text {' '.join(attrs)}>{esc(content)}</text>"


def line(x1: float, y1: float, x2: float, y2: float, *, stroke: str = AXIS, width: float = 1,
         dash: str | None = None) -> str:
    extra = f' stroke-width="{width}"' if width != 1 else ""
    extra += f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<line x1="{num(x1)}" y1="{num(y1)}" x2="{num(x2)}" y2="{num(y2)}" '
            f'stroke="{stroke}"{extra}/>')


def rect(x: float, y: float, w: float, h: float, fill: str, *, extra: str = "") -> str:
    return (f'<rect x="{num(x)}" y="{num(y)}" width="{num(max(w, 0))}" height="{num(max(h, 0))}" '
            f'fill="{fill}"{extra}/>')


def y_axis(f: Frame, ticks: Sequence[float], label: str, *, percent: bool = False,
           grid: bool = True) -> list[str]:
    """Horizontal grid lines, tick labels on the left and a rotated axis label."""
    out = []
    for t in ticks:
        y = f.sy(t)
        if grid:
            out.append(line(f.left, y, f.left + f.pw, y, stroke=GRID))
        out.append(text(f.left - 6, y + 3.5, tick_label(t, ticks, percent), anchor="end",
                        size=11, fill=MUTED))
    out.append(line(f.left, f.top, f.left, f.top + f.ph))
    cy = f.top + f.ph / 2
    out.append(text(13, cy, label, anchor="middle", size=12, fill=INK, rotate=-90))
    return out


def x_axis(f: Frame, ticks: Iterable[tuple[float, str]], label: str, *, grid: bool = False) -> list[str]:
    """Tick marks + labels under the plot (``ticks`` are (value, label) pairs) and the axis label."""
    base = f.top + f.ph
    out = [line(f.left, base, f.left + f.pw, base)]
    for v, lab in ticks:
        x = f.sx(v)
        if grid:
            out.append(line(x, f.top, x, base, stroke=GRID))
        out.append(line(x, base, x, base + 4))
        out.append(text(x, base + 16, lab, anchor="middle", size=11, fill=MUTED))
    out.append(text(f.left + f.pw / 2, f.height - 8, label, anchor="middle", size=12))
    return out


def legend(items: Sequence[tuple[str, str, str]], x: float, y: float, *, max_x: float) -> list[str]:
    """Legend entries ``(name, colour, kind)`` laid out left to right (kind: box|line|dash)."""
    out, cx, cy = [], x, y
    for name, colour, kind in items:
        name = clip(name, 32)
        w = 18 + text_width(name, 12) + 14
        if cx + w > max_x and cx > x:
            cx, cy = x, cy + 15
        if kind == "box":
            out.append(rect(cx, cy - 8, 10, 10, colour))
        else:
            out.append(line(cx, cy - 3, cx + 14, cy - 3, stroke=colour, width=2,
                            dash="4 3" if kind == "dash" else None))
        out.append(text(cx + 18, cy + 1, name, size=12))
        cx += w
    return out


def decimate(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Per pixel column keep only the first, lowest, highest and last point (M4
    decimation): the drawn line looks the same, the SVG stays small for long series."""
    out: list[tuple[float, float]] = []
    i = 0
    while i < len(points):
        j, col = i, round(points[i][0])
        while j < len(points) and round(points[j][0]) == col:
            j += 1
        group = points[i:j]
        if len(group) <= 4:
            out += group
        else:
            keep = {0, len(group) - 1, min(range(len(group)), key=lambda k: group[k][1]),
                    max(range(len(group)), key=lambda k: group[k][1])}
            out += [group[k] for k in sorted(keep)]
        i = j
    return out


def polyline_path(points: list[tuple[float, float]]) -> str:
    """'M x y L x y ...' (decimated), skipping points that round onto the previous one."""
    out, last = [], None
    for x, y in decimate(points):
        p = (num(x), num(y))
        if p != last:
            out.append(("M" if last is None else "L") + f"{p[0]} {p[1]}")
            last = p
    return "".join(out)


def document(width: float, height: float, title: str, parts: Iterable[str], *,
             fixed: bool = False) -> Markup:
    """Wrap ``parts`` in an ``<svg>`` root with a ``<title>`` and ``aria-label``.

    Scalable charts take the container width (capped at their natural width);
    ``fixed=True`` keeps the given pixel size (sparklines in table cells).
    """
    t = esc(title)
    size = (f'width="{num(width)}" height="{num(height)}"' if fixed else
            f'width="100%" style="max-width:{num(width)}px;height:auto"')
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {num(width)} {num(height)}" '
            f'{size} role="img" aria-label="{t}" font-family="{FONT}" font-size="{BASE_SIZE}" '
            f'fill="{INK}">'
            f"<title>{t}</title>")
    return Markup(head + "".join(parts) + "</svg>")


def empty(title: str, message: str = "no data", width: float = 640, height: float = 80) -> Markup:
    """A placeholder chart saying why there is nothing to draw."""
    return document(width, height, title, [
        rect(0.5, 0.5, width - 1, height - 1, "none", extra=f' stroke="{GRID}"'),
        text(width / 2, height / 2 + 4, message, anchor="middle", fill=MUTED, size=13),
    ])


def finite(v: object) -> float | None:
    """``float(v)`` if it is a finite number, else ``None`` (gaps, missing values)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None
