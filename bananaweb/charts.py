"""Stacked SVG bar charts, drawn as plain strings: no Django, no bananaweb.

Every value put into the markup is HTML-escaped here; the caller marks the
result safe when it hands it to a template.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Series:
    name: str
    # None: no bar (e.g. no rate on a day without finished requests).
    values: Sequence[float | None]
    css_class: str
    fill: str  # the fallback colour; dashboard.css sets the real ones, light and dark


@dataclass(frozen=True)
class ChartBox:
    width: int = 720
    height: int = 240
    left: int = 48
    right: int = 12
    top: int = 28
    bottom: int = 36

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above value: a round y axis top."""
    if value <= 0:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    steps = (1, 2, 2.5, 5, 10)
    return next(step * magnitude for step in steps if step * magnitude >= value)


def _px(value: float) -> str:
    return f"{value:.1f}"


def _number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _format(template: str, *args: object) -> str:
    """str.format with every argument HTML-escaped (as Django's format_html)."""
    return template.format(*(escape(str(arg)) for arg in args))


def bar_chart_svg(
    *,
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[Series],
    y_max: float | None = None,
    unit: str = "",
    box: ChartBox = ChartBox(),
) -> str:
    """A stacked bar chart with axes, a legend and a tooltip per bar, as inline SVG."""
    stacks = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    top = y_max if y_max is not None else nice_ceiling(max(stacks, default=0))
    slot = box.plot_width / max(len(labels), 1)
    bar_width = max(slot * 0.7, 1)
    baseline = box.top + box.plot_height
    right = box.width - box.right

    def y(value: float) -> float:
        return baseline - box.plot_height * value / top

    parts = [
        _format(
            '<svg role="img" aria-labelledby="{0}-title {0}-desc" '
            'viewBox="0 0 {1} {2}" width="{1}" height="{2}" '
            'class="chart" xmlns="http://www.w3.org/2000/svg">'
            '<title id="{0}-title">{3}</title><desc id="{0}-desc">{4}</desc>',
            chart_id,
            box.width,
            box.height,
            title,
            description,
        )
    ]
    # The y axis: gridlines and labels at 0, the top, and half-way when that is a
    # whole number.
    for tick in (0, top / 2, top) if (top / 2).is_integer() else (0, top):
        parts.append(
            _format(
                '<line class="chart__grid" x1="{}" x2="{}" y1="{}" y2="{}" '
                'stroke="#ccc" stroke-width="1"/>'
                '<text class="chart__label" x="{}" y="{}" text-anchor="end" '
                'font-size="11" fill="#666">{}{}</text>',
                box.left,
                right,
                _px(y(tick)),
                _px(y(tick)),
                box.left - 6,
                _px(y(tick) + 4),
                _number(tick),
                unit,
            )
        )
    # The bars, stacked in the order of the series.
    for i, label in enumerate(labels):
        x = box.left + i * slot + (slot - bar_width) / 2
        bottom = 0.0
        for s in series:
            value = s.values[i]
            if not value:
                continue
            parts.append(
                _format(
                    '<rect class="chart__bar {}" x="{}" y="{}" width="{}" '
                    'height="{}" fill="{}">'
                    "<title>{}: {}{} {}</title></rect>",
                    s.css_class,
                    _px(x),
                    _px(y(bottom + value)),
                    _px(bar_width),
                    _px(y(bottom) - y(bottom + value)),
                    s.fill,
                    label,
                    _number(value),
                    unit,
                    s.name,
                )
            )
            bottom += value
    # The x axis: the baseline and about a dozen labels at most.
    parts.append(
        _format(
            '<line class="chart__axis" x1="{}" x2="{}" y1="{}" y2="{}" '
            'stroke="#888" stroke-width="1"/>',
            box.left,
            right,
            baseline,
            baseline,
        )
    )
    every = math.ceil(len(labels) / 12) or 1
    for i in range(0, len(labels), every):
        parts.append(
            _format(
                '<text class="chart__label" x="{}" y="{}" text-anchor="middle" '
                'font-size="11" fill="#666">{}</text>',
                _px(box.left + (i + 0.5) * slot),
                baseline + 16,
                labels[i],
            )
        )
    # The legend, top left.
    x = box.left
    for s in series:
        parts.append(
            _format(
                '<rect class="{}" x="{}" y="8" width="10" height="10" fill="{}"/>'
                '<text class="chart__label" x="{}" y="17" font-size="11" '
                'fill="#666">{}</text>',
                s.css_class,
                x,
                s.fill,
                x + 14,
                s.name,
            )
        )
        x += 24 + 7 * len(s.name)
    parts.append("</svg>")
    return "".join(parts)
