"""The report as data: one row per runner (eager, each artifact, peers), JSON that round-trips, Markdown, a chart.

`report.json` is the source of truth: `deploy report` re-renders `report.md` and `report.png` from it without
measuring anything again, and `deploy report --all` indexes every model's report.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from deploy.backends.timing import LatencyStats, Overhead, Ratio
from deploy.codec import dumps, to_data
from deploy.errors import ArtifactError
from deploy.sidecar import ArtifactLabel

SCHEMA = "deploy.report/1"
GPU_STAGES = ("end_to_end", "h2d", "compute", "d2h")


@dataclass(frozen=True)
class ReportRow:
    name: str  # "eager", "eager-cuda", an artifact's label name (fp32, int8-cpu, int8-cpu openvino, ...) or a peer
    artifact: str | None
    precision: str
    backend: str  # torch, onnxruntime, tensorrt; peers: openvino, torch.compile
    size_bytes: int | None = None
    build_seconds: float | None = None
    passed: bool | None = None  # None: the reference itself, or a peer that was timed, not verified
    cosine_min: float | None = None
    top1_agreement: float | None = None
    top5_agreement: float | None = None
    max_abs: float | None = None
    accuracy: float | None = None
    latency: dict[int, LatencyStats] = field(default_factory=dict)
    speedup: dict[int, Ratio] = field(default_factory=dict)  # vs eager (CPU rows) or eager-cuda (plans)
    gpu: dict[int, dict[str, LatencyStats]] = field(default_factory=dict)  # CUDA-event stages per batch
    peer: bool = False  # timed by benchmarks/ for comparison; not an artifact deploy produced
    label: ArtifactLabel | None = None  # what the artifact is; None for the eager references and peers

    @property
    def reference(self) -> bool:
        """Eager PyTorch, which every other row is compared against."""
        return self.label is None and not self.peer and self.artifact is None


@dataclass(frozen=True)
class BenchSettings:
    threads: int
    duration_s: float
    per_round: int
    settle: int
    warmup_s: float


@dataclass(frozen=True)
class Report:
    json_derived: ClassVar[tuple[str, ...]] = ("passed",)
    model: str
    weights: dict[str, Any]
    created_at: str
    images: str
    labelled: bool
    environment: dict[str, Any]
    rows: tuple[ReportRow, ...]
    bench: BenchSettings | None = None
    overhead: tuple[Overhead, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """Every artifact deploy built passed; a peer's verdict is information about someone else's runtime."""
        return all(row.passed is not False for row in self.rows if not row.peer)

    @property
    def verdict(self) -> str:
        """One phrase: which artifacts failed parity, or that all passed (what a chart title and Markdown lead with)."""
        failed = [row.name for row in self.rows if row.passed is False and not row.peer]
        if failed:
            return f"FAILED: {', '.join(failed)}"
        judged = sum(1 for row in self.rows if row.passed is not None and not row.peer)
        return f"all {judged} artifacts passed parity"

    @property
    def tail_backed(self) -> bool:
        """Every latency has the iterations a p99 needs; else renderers state the maximum instead."""
        return all(stats.tail_backed for row in self.rows for stats in row.latency.values())

    @property
    def batches(self) -> tuple[int, ...]:
        return tuple(sorted({b for row in self.rows for b in row.latency}))

    def with_peers(self, peers: tuple[ReportRow, ...]) -> Report:
        """The same report with its peer rows replaced by `peers` (benchmarks/ re-runs replace, never pile up)."""
        kept = tuple(row for row in self.rows if not row.peer)
        return dataclasses.replace(self, rows=kept + tuple(dataclasses.replace(p, peer=True) for p in peers))

    def document(self) -> dict[str, Any]:
        """report.json's content as data: the schema, then every field (and `passed`)."""
        return {"schema": SCHEMA, **to_data(self)}

    def to_json(self) -> str:
        return dumps(self.document()) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: Path | str = "report.json") -> Report:
        """A report.json, every field type-checked: a hand-edited or foreign file is one error naming the field."""
        from deploy.validation import parse

        hint = "regenerate it with `deploy pipeline MODEL`"
        try:
            data = json.loads(text)
            schema = data.get("schema") if isinstance(data, dict) else None
            if schema != SCHEMA:
                raise ValueError(f"schema {schema!r}, expected {SCHEMA!r}")
        except (ValueError, RecursionError) as exc:
            raise ArtifactError(f"{source} is not a deploy report ({exc})", hint=hint) from exc
        return parse(cls, {k: v for k, v in data.items() if k not in ("schema", "passed")}, what=str(source), hint=hint)

    @classmethod
    def read(cls, path: Path) -> Report:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ArtifactError(
                f"cannot read report {path}: {reason}",
                hint="run `deploy pipeline MODEL` first, or point --reports-dir at the folder that holds it",
            ) from exc
        return cls.from_json(text, source=path)
