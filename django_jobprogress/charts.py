"""A stacked bar chart for inline SVG, drawn on the server: this module computes the
geometry and writes the bars (up to ~360 columns: a template loop over them costs
far more than the queries behind them); the template
``admin/django_jobprogress/dashboard_chart.html`` writes the frame. No JavaScript,
no CDN."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 760
HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 24, 40
Y_TICKS = 4


@dataclass(frozen=True)
class Segment:
    series: str
    label: str
    value: int
    y: float
    height: float


@dataclass(frozen=True)
class Column:
    """One bar: its label (a time, for the tooltip and the table) and its stack."""

    label: str
    x: float
    width: float
    total: int
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    columns: tuple[Column, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]

    @property
    def y_tick_x(self) -> float:
        return self.left - 6

    @property
    def x_mark_end(self) -> float:
        return self.bottom + 4

    @property
    def x_tick_y(self) -> float:
        return self.bottom + 16

    @property
    def caption_y(self) -> float:
        return self.height - 4

    @property
    def drawn(self) -> tuple[Column, ...]:
        """The columns with something to draw (empty ones are left out of the SVG)."""
        return tuple(column for column in self.columns if column.total)


def tick_step(largest: int) -> int:
    """A whole step (1, 2, 2.5 or 5 x 10^k) such that ``Y_TICKS`` steps reach
    ``largest``."""
    raw = largest / Y_TICKS
    if raw <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        step = multiple * magnitude
        if step >= raw and step == int(step):
            return int(step)
    raise AssertionError("unreachable: 10 x magnitude is always enough")


def stacked_bars(
    labels: Sequence[str],
    values: Sequence[Sequence[int]],
    series: Sequence[tuple[str, str]],
    x_ticks: Sequence[tuple[int, str]],
) -> Chart:
    """Lay out one bar per label, each stacking ``values[i]`` (one value per
    ``series``, a (key, label) pair) from the bottom up; ``x_ticks`` are (column
    index, label) pairs."""
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels for {len(values)} columns")
    left, right, top, bottom = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM
    step = (right - left) / max(len(labels), 1)
    gap = step * 0.15 if step >= 3 else 0.0
    tick = tick_step(max((sum(column) for column in values), default=0))
    ceiling = tick * Y_TICKS
    scale = (bottom - top) / ceiling
    columns = []
    for index, (label, column) in enumerate(zip(labels, values, strict=True)):
        y = float(bottom)
        segments = []
        for (key, name), value in zip(series, column, strict=True):
            if value:
                height = value * scale
                y -= height
                segments.append(Segment(key, name, value, round(y, 2), round(height, 2)))
        x = left + index * step + gap / 2
        columns.append(
            Column(label, round(x, 2), round(step - gap, 2), sum(column), tuple(segments))
        )
    y_ticks = tuple(
        Tick(round(bottom - i * (bottom - top) / Y_TICKS, 2), str(tick * i))
        for i in range(Y_TICKS + 1)
    )
    ticks = tuple(Tick(round(left + index * step, 2), label) for index, label in x_ticks)
    return Chart(WIDTH, HEIGHT, left, right, top, bottom, tuple(columns), ticks, y_ticks)


def bars_svg(chart: Chart, describe: Callable[[Column], str]) -> SafeString:
    """The ``<g>`` of each drawn column, its ``<title>`` (a tooltip) from ``describe``;
    every text is escaped here, numbers are written unlocalized."""
    parts = []
    for column in chart.drawn:
        rects = "".join(
            f'<rect class="jp-chart__{escape(s.series)}" x="{column.x:g}" y="{s.y:g}" '
            f'width="{column.width:g}" height="{s.height:g}"/>'
            for s in column.segments
        )
        parts.append(
            f'<g class="jp-chart__column"><title>{escape(describe(column))}</title>{rects}</g>'
        )
    return mark_safe("\n".join(parts))  # escaped text and numbers only
