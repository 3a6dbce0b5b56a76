"""`deploy report`: re-render reports from their JSON (no measuring) and index every model's report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deploy.errors import BadInput
from deploy.files import Staging
from deploy.report.files import ReportFiles, write_report
from deploy.report.model import Report, ReportRow
from deploy.targets import TARGETS


@dataclass(frozen=True)
class RenderResult:
    reports: tuple[ReportFiles, ...]
    index: Path | None


def render_reports(
    reports_dir: Path, models: tuple[str, ...] = (), *, every: bool = False, chart: bool = True
) -> RenderResult:
    """Rebuild report.md (and report.png) of `models`, or of every report with `every`, which also writes index.md."""
    if every == bool(models):
        raise BadInput(
            "name models or pass --all, not both or neither", hint="`deploy report resnet50`, or `deploy report --all`"
        )
    paths = sorted(reports_dir.glob("*/report.json")) if every else [reports_dir / m / "report.json" for m in models]
    if every and not paths:
        raise BadInput(f"no reports in {reports_dir}", hint="run `deploy pipeline MODEL` first")
    loaded = [Report.read(path) for path in paths]  # read all first: one bad file changes nothing on disk
    written = tuple(write_report(report, path.parent, chart=chart) for report, path in zip(loaded, paths, strict=True))
    index = write_index(reports_dir, list(zip(loaded, paths, strict=True))) if every else None
    return RenderResult(written, index)


def best_row(report: Report, batch: int = 1) -> ReportRow | None:
    """The fastest CPU artifact at `batch` that passed verification (references, peers and TensorRT plans, which
    are timed against eager CUDA, excluded)."""
    candidates = [r for r in report.rows if r.passed and not r.peer and _on_cpu(r) and batch in r.latency]
    return min(candidates, key=lambda r: r.latency[batch].p50_ms, default=None)


def _on_cpu(row: ReportRow) -> bool:
    """Timed against eager CPU (a GPU target's rows are timed against eager CUDA); reports before labels: backend."""
    if row.label is None:
        return row.backend != "tensorrt"
    target = TARGETS.get(row.label.target)
    return target is None or target.device == "cpu"


def write_index(reports_dir: Path, reports: list[tuple[Report, Path]]) -> Path:
    head = ["model", "weights", "eager b1 ms", "best CPU artifact (b1)", "its b1 ms", "speed-up", "its accuracy/agr.",
            "all pass", "report"]  # fmt: skip
    lines = [
        "# deploy reports",
        "",
        "Best CPU artifact = the fastest one at batch 1 that passed verification against eager PyTorch.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for report, path in sorted(reports, key=lambda item: item[0].model):
        eager = next((r for r in report.rows if r.name == "eager"), None)
        best = best_row(report)
        quality = None if best is None else (best.accuracy if report.labelled else best.top1_agreement)
        ratio = None if best is None else best.speedup.get(1)
        cells = [
            report.model,
            str(report.weights.get("name")),
            "" if eager is None or 1 not in eager.latency else f"{eager.latency[1].p50_ms:.2f}",
            "" if best is None else best.name,
            "" if best is None else f"{best.latency[1].p50_ms:.2f}",
            "" if ratio is None else f"{ratio.median:.2f}×",
            "" if quality is None else f"{quality:.1%}",
            "yes" if report.passed else "**no**",
            f"[{path.parent.name}/report.md]({path.parent.name}/report.md)",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    index = reports_dir / "index.md"
    with Staging() as staging:
        staging.path_for(index).write_text("\n".join(lines) + "\n", encoding="utf-8")
        staging.commit()
    return index
