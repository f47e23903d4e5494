"""Time-series charts drawn on the server as inline SVG (no script, no CDN)."""
from __future__ import annotations

import datetime
import html

WIDTH, HEIGHT = 560, 170
LEFT, RIGHT, TOP, BOTTOM = 62, 12, 26, 28


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def line_chart(points: list[tuple[int, float]], title: str, unit: str, chart_id: str) -> str:
    """An SVG line chart of ``(time_ms, value)`` points with its average as a dashed line."""
    values = [v for _, v in points if v is not None and v >= 0]
    average = sum(values) / len(values) if values else None
    head = (f'<svg id="{chart_id}" class="chart" xmlns="http://www.w3.org/2000/svg" '
            f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'data-points="{len(values)}" data-average="{"" if average is None else round(average, 2)}">')
    label = f"{html.escape(title)}"
    if average is not None:
        label += f" (avg {average:,.1f} {html.escape(unit)})"
    parts = [head, f'<text x="{LEFT}" y="16" class="title">{label}</text>']
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>')
    usable = [(t, v) for t, v in points if v is not None and v >= 0]
    if not usable:
        parts.append(f'<text x="{LEFT + 10}" y="{TOP + plot_h / 2}">no data yet</text></svg>')
        return "".join(parts)
    t0, t1 = usable[0][0], usable[-1][0]
    top = _nice_ceiling(max(v for _, v in usable))
    span = max(1, t1 - t0)

    def x_of(t: int) -> float:
        return LEFT + (t - t0) / span * plot_w if len(usable) > 1 else LEFT + plot_w / 2

    def y_of(v: float) -> float:
        return TOP + plot_h - v / top * plot_h

    tick_format = ",.1f" if top < 10 else ",.0f"
    for fraction in (0.0, 0.5, 1.0):
        y = y_of(top * fraction)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
                     f'{format(top * fraction, tick_format)}</text>')
    for t, anchor in ((t0, "start"), (t1, "end")):
        when = datetime.datetime.fromtimestamp(t / 1000).strftime("%H:%M:%S")
        parts.append(f'<text x="{x_of(t):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" class="tick">'
                     f'{when}</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{x_of(t):.1f},{y_of(v):.1f}"
                    for i, (t, v) in enumerate(usable))
    parts.append(f'<path d="{path}" class="series"/>')
    for t, v in usable[-60:]:
        parts.append(f'<circle cx="{x_of(t):.1f}" cy="{y_of(v):.1f}" r="2" class="dot">'
                     f'<title>{v:,.1f} {html.escape(unit)}</title></circle>')
    if average is not None:
        y = y_of(average)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" class="avg"/>')
    parts.append("</svg>")
    return "".join(parts)
