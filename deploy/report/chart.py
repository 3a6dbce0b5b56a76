"""The report's PNG: p50 latency (p99 whiskers), speed-up vs eager (p10–p90 whiskers) and accuracy per runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deploy.lazy import require
from deploy.report.model import Report


def render_chart(report: Report, path: Path) -> Path:
    """Three panels side by side, one bar group per runner and one bar per batch size; written as PNG to `path`."""
    matplotlib = require("matplotlib", purpose="the report chart")
    matplotlib.use("Agg")  # no display: reports are rendered on servers and in CI
    pyplot = require("matplotlib.pyplot", purpose="the report chart")

    rows = [row for row in report.rows if row.latency]
    names = [f"{row.name}{' (peer)' if row.peer else ''}" for row in rows]
    batches = report.batches
    positions = np.arange(len(rows))
    width = 0.8 / max(1, len(batches))
    figure, (latency_axis, speedup_axis, quality_axis) = pyplot.subplots(
        1, 3, figsize=(6 + 1.4 * len(rows), 4.8), constrained_layout=True
    )
    for index, batch in enumerate(batches):
        offset = positions + (index - (len(batches) - 1) / 2) * width
        p50 = np.array([row.latency[batch].p50_ms if batch in row.latency else np.nan for row in rows])
        p99 = np.array([row.latency[batch].p99_ms if batch in row.latency else np.nan for row in rows])
        latency_axis.bar(offset, p50, width, yerr=[np.zeros_like(p50), np.nan_to_num(p99 - p50)], capsize=2,
                         label=f"batch {batch}")  # fmt: skip
        ratios = [row.speedup.get(batch) for row in rows]
        median = np.array([r.median if r else (1.0 if row.reference else np.nan)
                           for r, row in zip(ratios, rows, strict=True)])  # fmt: skip
        low = np.array([r.median - r.p10 if r else 0.0 for r in ratios])
        high = np.array([r.p90 - r.median if r else 0.0 for r in ratios])
        speedup_axis.bar(offset, median, width, yerr=[low, high], capsize=2, label=f"batch {batch}")
    latency_axis.set_title("p50 latency (whisker: p99)")
    latency_axis.set_ylabel("ms per batch")
    latency_axis.set_yscale("log")
    speedup_axis.set_title("speed-up vs eager (whisker: p10–p90)")
    speedup_axis.axhline(1.0, color="grey", linewidth=0.8)
    speedup_axis.set_ylabel("×")
    quality = [row.accuracy if report.labelled else row.top1_agreement for row in rows]
    quality_axis.bar(positions, [np.nan if q is None else 100 * q for q in quality], 0.6, color="tab:green")
    quality_axis.set_title("held-out accuracy" if report.labelled else "top-1 agreement with eager")
    quality_axis.set_ylabel("%")
    quality_axis.set_ylim(0, 105)
    for axis in (latency_axis, speedup_axis, quality_axis):
        axis.set_xticks(positions, names, rotation=30, ha="right", fontsize=8)
    latency_axis.legend(fontsize=8)
    env = report.environment
    figure.suptitle(
        f"{report.model}: {env.get('cpu')} ({env.get('isa', 'ISA not recorded')}), {env.get('threads')} threads"
    )
    figure.savefig(path, format="png", dpi=110)
    pyplot.close(figure)
    return path
