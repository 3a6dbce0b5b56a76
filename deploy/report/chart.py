"""The report's PNG: p50 latency, speed-up vs eager and accuracy per runner, made to be shared.

A failed artifact is drawn unmistakably (red, hatched, labelled FAIL) and named in the title with the weights kind.
Speed-up is on a log axis clipped to the bars: a per-round ratio far out (lenet5: p90 of 1,200× against a median
of 9×, a few rounds where eager stalled) is written above its bar instead of squashing every bar. Accuracy is zoomed
to the data, so 97.8 vs 97.6 shows. The latency whisker is p99 only when every runner had enough iterations to
back it, otherwise it is the maximum and the panel says so.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from deploy.backends.timing import TAIL_MIN_ITERATIONS
from deploy.lazy import require
from deploy.report.model import Report, ReportRow

FAIL_COLOR = "#d62728"
FAIL_HATCH = "///"
PASS_COLOR = "#2ca02c"
REFERENCE_COLOR = "#7f7f7f"
# Bars of the speed-up panel fit under this many times the largest median; a whisker beyond it is clipped and its
# value written at the top (the outlier, stated).
SPEEDUP_HEADROOM = 2.5


def render_chart(report: Report, path: Path) -> Path:
    """Three panels side by side, one bar group per runner and one bar per batch size; written as PNG to `path`."""
    matplotlib = require("matplotlib", purpose="the report chart")
    matplotlib.use("Agg")  # no display: reports are rendered on servers and in CI
    pyplot = require("matplotlib.pyplot", purpose="the report chart")

    rows = [row for row in report.rows if row.latency]
    failed = [row.passed is False and not row.peer for row in rows]
    names = [_tick(row, fail) for row, fail in zip(rows, failed, strict=True)]
    batches = report.batches
    positions = np.arange(len(rows))
    width = 0.8 / max(1, len(batches))
    tail = report.tail_backed
    figure, (latency_axis, speedup_axis, quality_axis) = pyplot.subplots(
        1, 3, figsize=(7 + 1.5 * len(rows), 5.2), constrained_layout=True
    )
    colors = pyplot.get_cmap("tab10").colors
    outliers: list[tuple[float, float]] = []  # (x, p90) of whiskers clipped by the speed-up axis
    top = _speedup_top(rows)
    for index, batch in enumerate(batches):
        offset = positions + (index - (len(batches) - 1) / 2) * width
        color = colors[index % len(colors)]
        p50 = np.array([row.latency[batch].p50_ms if batch in row.latency else np.nan for row in rows])
        whisker = np.array([_whisker(row, batch, tail) for row in rows])
        bars = latency_axis.bar(offset, p50, width, yerr=[np.zeros_like(p50), np.nan_to_num(whisker - p50)],
                                capsize=2, label=f"batch {batch}", color=color)  # fmt: skip
        _mark_failures(bars, failed)
        ratios = [row.speedup.get(batch) for row in rows]
        median = np.array([r.median if r else (1.0 if row.reference else np.nan)
                           for r, row in zip(ratios, rows, strict=True)])  # fmt: skip
        low = np.array([r.median - r.p10 if r else 0.0 for r in ratios])
        high = np.array([min(r.p90, top) - r.median if r else 0.0 for r in ratios])
        bars = speedup_axis.bar(offset, median, width, yerr=[low, high], capsize=2, color=color)
        _mark_failures(bars, failed)
        outliers += [(x, r.p90) for x, r in zip(offset, ratios, strict=True) if r is not None and r.p90 > top]
    latency_axis.set_title(f"p50 latency (whisker: {'p99' if tail else 'max'})")
    if not tail:
        latency_axis.text(0.02, 0.98, f"fewer than {TAIL_MIN_ITERATIONS} iterations: no p99", fontsize=7,
                          transform=latency_axis.transAxes, va="top")  # fmt: skip
    latency_axis.set_ylabel("ms per batch (log)")
    latency_axis.set_yscale("log")
    for axis in (latency_axis, speedup_axis):  # 0.06 and 20, not 6×10⁻² and 2×10¹
        axis.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        axis.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    _speedup_axis(speedup_axis, rows, top, outliers)
    _quality_axis(quality_axis, report, rows, failed, positions)
    for axis in (latency_axis, speedup_axis, quality_axis):
        axis.set_xticks(positions, names, rotation=30, ha="right", fontsize=8)
        for label, fail in zip(axis.get_xticklabels(), failed, strict=True):
            if fail:
                label.set_color(FAIL_COLOR)
                label.set_fontweight("bold")
    handles, labels = latency_axis.get_legend_handles_labels()
    if any(failed):
        handles.append(matplotlib.patches.Patch(facecolor=FAIL_COLOR, hatch=FAIL_HATCH, edgecolor="black"))
        labels.append("FAILED parity")
    latency_axis.legend(handles, labels, fontsize=8)
    figure.suptitle(chart_title(report), color=FAIL_COLOR if not report.passed else "black")
    figure.savefig(path, format="png", dpi=110)
    pyplot.close(figure)
    return path


def chart_title(report: Report) -> str:
    """Model, weights kind and verdict on the first line (what a reader must know first); the machine below."""
    kind = report.weights.get("kind")
    weights = "random weights (untrained)" if kind == "random" else f"{report.weights.get('name')} weights"
    verdict = report.verdict
    env = report.environment
    machine = f"{env.get('cpu')} ({env.get('isa', 'ISA not recorded')}), {env.get('threads')} threads"
    return f"{report.model} — {weights} — {verdict}\n{machine}"


def _tick(row: ReportRow, fail: bool) -> str:
    name = f"{row.name} (peer)" if row.peer else row.name
    return f"✗ {name} FAIL" if fail else name


def _whisker(row: ReportRow, batch: int, tail: bool) -> float:
    stats = row.latency.get(batch)
    if stats is None:
        return math.nan
    return stats.p99_ms if tail else stats.max_ms


def _mark_failures(bars: Any, failed: list[bool]) -> None:
    for bar, fail in zip(bars, failed, strict=True):
        if fail:
            bar.set_facecolor(FAIL_COLOR)
            bar.set_hatch(FAIL_HATCH)
            bar.set_edgecolor("black")


def _speedup_top(rows: list[ReportRow]) -> float:
    medians = [r.median for row in rows for r in row.speedup.values()]
    return max([1.0, *medians]) * SPEEDUP_HEADROOM


def _speedup_axis(axis: Any, rows: list[ReportRow], top: float, outliers: list[tuple[float, float]]) -> None:
    lows = [r.p10 for row in rows for r in row.speedup.values()]
    bottom = min([1.0, *lows]) / 1.5
    axis.set_yscale("log")
    axis.set_ylim(bottom, top)
    axis.axhline(1.0, color="grey", linewidth=0.8)
    axis.set_ylabel("× (log)")
    clipped = f"; {len(outliers)} clipped, p90 written" if outliers else ""
    axis.set_title(f"speed-up vs eager (whisker: p10–p90{clipped})")
    for x, value in outliers:
        axis.annotate(f"p90 {value:,.0f}× ↑", (x, top), xytext=(0, -3), textcoords="offset points", ha="center",
                      va="top", fontsize=7, bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.9})  # fmt: skip


def _quality_axis(axis: Any, report: Report, rows: list[ReportRow], failed: list[bool], positions: Any) -> None:
    quality = [row.accuracy if report.labelled else row.top1_agreement for row in rows]
    values = np.array([np.nan if q is None else 100 * q for q in quality])
    colors = [FAIL_COLOR if fail else REFERENCE_COLOR if row.reference else PASS_COLOR
              for row, fail in zip(rows, failed, strict=True)]  # fmt: skip
    bars = axis.bar(positions, values, 0.6, color=colors)
    _mark_failures(bars, failed)
    axis.set_title("held-out accuracy" if report.labelled else "top-1 agreement with eager")
    axis.set_ylabel("% (axis zoomed to the data)")
    known = values[~np.isnan(values)]
    if known.size:
        low, high = float(known.min()), float(known.max())
        margin = max(0.5, (high - low) * 0.6)
        axis.set_ylim(max(0.0, low - margin), min(100.0, high + margin))
        for x, value in zip(positions, values, strict=True):
            if not np.isnan(value):
                axis.annotate(f"{value:.2f}", (x, value), xytext=(0, 2), textcoords="offset points", ha="center",
                              fontsize=7)  # fmt: skip
