"""The pipeline's report as data: one row per artifact, rendered to JSON and to a Markdown table."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deploy.files import Staging
from deploy.harness.bench import LatencyStats


@dataclass(frozen=True)
class ReportRow:
    name: str  # "eager" or the artifact label (fp32, fp16, int8, int8-max)
    artifact: str | None
    precision: str
    backend: str
    size_bytes: int | None
    build_seconds: float | None
    passed: bool | None
    cosine_min: float | None
    top1_agreement: float | None
    top5_agreement: float | None
    max_abs: float | None
    accuracy: float | None
    latency: dict[int, LatencyStats] = field(default_factory=dict)
    speedup: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    model: str
    weights: dict[str, Any]
    created_at: str
    images: str
    labelled: bool
    environment: dict[str, Any]
    rows: tuple[ReportRow, ...]
    warnings: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(row.passed is not False for row in self.rows)

    def to_json(self) -> str:
        data = asdict(self)
        for row, raw in zip(self.rows, data["rows"], strict=True):
            for batch, stats in row.latency.items():
                raw["latency"][batch]["throughput"] = stats.throughput
        data["passed"] = self.passed
        return json.dumps(data, indent=2) + "\n"

    def to_markdown(self) -> str:
        batches = sorted({b for row in self.rows for b in row.latency})
        head = ["artifact", "backend", "size MB", "parity", "cosine min", "top-1 agr."]
        head += ["accuracy"] if self.labelled else []
        for b in batches:
            head += [f"p50 b{b} ms", f"p90 b{b} ms", f"speed-up b{b}"]
        lines = [
            f"# {self.model}: eager PyTorch vs deployed artifacts",
            "",
            f"Weights: {self.weights.get('name')} ({self.weights.get('kind')}). Held-out images: {self.images}. "
            f"Created {self.created_at}.",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "|".join("---" for _ in head) + "|",
        ]
        for row in self.rows:
            cells = [
                row.name,
                row.backend,
                "" if row.size_bytes is None else f"{row.size_bytes / 1e6:.1f}",
                "reference" if row.passed is None else ("pass" if row.passed else "**FAIL**"),
                _num(row.cosine_min, ".5f"),
                _pct(row.top1_agreement),
            ]
            cells += [_pct(row.accuracy)] if self.labelled else []
            for b in batches:
                stats = row.latency.get(b)
                cells += [
                    _num(stats.p50_ms if stats else None, ".2f"),
                    _num(stats.p90_ms if stats else None, ".2f"),
                    _num(row.speedup.get(b), ".2f", suffix="×"),
                ]
            lines.append("| " + " | ".join(cells) + " |")
        env = self.environment
        lines += [
            "",
            f"Latency: median and p90 of {env.get('iterations')}+ runs after warm-up, {env.get('threads')} threads for "
            f"both eager PyTorch and ONNX Runtime, on {env.get('cpu')} ({env.get('cores')} cores). Speed-up = eager "
            "p50 / artifact p50 at the same batch.",
            "",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()),
        ]
        if self.warnings:
            lines += ["", "Warnings:", *(f"- {w}" for w in self.warnings)]
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        md, js = folder / "report.md", folder / "report.json"
        with Staging() as staging:
            staging.path_for(js).write_text(self.to_json(), encoding="utf-8")
            staging.path_for(md).write_text(self.to_markdown(), encoding="utf-8")
            staging.commit()
        return md, js


def _num(value: float | None, fmt: str, suffix: str = "") -> str:
    return "" if value is None else f"{value:{fmt}}{suffix}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(threads: int, iterations: int, versions: dict[str, str]) -> dict[str, Any]:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": threads,
        "iterations": iterations,
        "platform": platform.platform(),
        "versions": versions,
    }
