"""Markdown rendering of a Report: the table people paste into a pull request, then how it was measured."""

from __future__ import annotations

from deploy.backends.timing import Ratio
from deploy.report.model import GPU_STAGES, Report, ReportRow

OUTLIER_FACTOR = 3.0  # a per-round ratio 3× from the median is a stalled round, not the artifact's speed


def report_markdown(report: Report, *, chart: str | None = "report.png") -> str:
    labelled = report.labelled
    kind = report.weights.get("kind")
    untrained = " — untrained, so accuracy says nothing about the deployment; speed still does" * (kind == "random")
    lines = [
        f"# {report.model}: eager PyTorch vs deployed artifacts",
        "",
        f"**Verdict: {report.verdict}.**" if report.passed else f"**Verdict: ❌ {report.verdict}.**",
        "",
        f"Weights: {report.weights.get('name')} ({kind}{untrained}). Held-out images: {report.images}. "
        f"Created {report.created_at}.",
        "",
        *_main_table(report, labelled),
    ]
    outliers = _outliers(report)
    if outliers:
        lines += ["", f"† Wide spread: {'; '.join(outliers)}. Per-round ratios that far out are rounds where one "
                  "runner stalled (another process, a page fault); the median is the robust figure."]  # fmt: skip
    if chart:
        lines += ["", f"![latency, speed-up and {'accuracy' if labelled else 'agreement'}]({chart})"]
    lines += ["", *_method(report)]
    if any(row.gpu for row in report.rows):
        lines += ["", *_gpu_table(report)]
    if report.overhead:
        lines += ["", "## Harness overhead", ""]
        lines += [
            f"- batch {o.batch}: runner {o.runner_p50_ms:.3f} ms vs bare session.run {o.bare_p50_ms:.3f} ms "
            f"({o.percent:+.2f}%)"
            for o in report.overhead
        ]
    lines += ["", *_environment(report)]
    if report.warnings:
        lines += ["", "## Warnings", "", *(f"- {w}" for w in report.warnings)]
    return "\n".join(lines) + "\n"


def _main_table(report: Report, labelled: bool) -> list[str]:
    head = ["runner", "backend", "size MB", "build s", "parity", "cosine min", "top-1 agr."]
    head += ["accuracy"] if labelled else []
    tail = report.tail_backed  # else a "p99" of so few iterations is the maximum: say max
    for b in report.batches:
        head += [f"b{b} p50 / {'p99' if tail else 'max'} ms", f"b{b} img/s", f"b{b} speed-up (p10–p90)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in report.rows:
        cells = [
            f"{row.name} (peer)" if row.peer else row.name,
            row.backend,
            _num(None if row.size_bytes is None else row.size_bytes / 1e6, ".1f"),
            _num(row.build_seconds, ".1f"),
            _verdict(row),
            _num(row.cosine_min, ".5f"),
            _pct(row.top1_agreement),
        ]
        cells += [_pct(row.accuracy)] if labelled else []
        for b in report.batches:
            stats = row.latency.get(b)
            ratio = row.speedup.get(b)
            cells += [
                "" if stats is None else f"{stats.p50_ms:.2f} / {stats.p99_ms if tail else stats.max_ms:.2f}",
                "" if stats is None else f"{stats.throughput:,.0f}",
                _ratio(ratio, reference=row.reference),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _gpu_table(report: Report) -> list[str]:
    lines = [
        "## GPU stages (CUDA events)",
        "",
        "| runner | batch | " + " | ".join(f"{s} p50 ms" for s in GPU_STAGES) + " |",
        "|---|---|" + "|".join("---" for _ in GPU_STAGES) + "|",
    ]
    for row in report.rows:
        for batch, stages in sorted(row.gpu.items()):
            cells = [f"{stages[s].p50_ms:.3f}" if s in stages else "" for s in GPU_STAGES]
            lines.append(f"| {row.name} | {batch} | " + " | ".join(cells) + " |")
    return lines


def _method(report: Report) -> list[str]:
    bench = report.bench
    if bench is None:
        return []
    return [
        "## How this was measured",
        "",
        f"Eager PyTorch and every artifact ran interleaved in rounds (A B C, A B C, …) for {bench.duration_s:g} s per "
        f"batch size after {bench.warmup_s:g} s of warm-up each; each turn is {bench.settle} untimed settle "
        f"iteration(s), then {bench.per_round} timed ones, on a rotating pool of real preprocessed images, with "
        f"{bench.threads} threads for every runtime. Speed-up is the median over rounds of eager's round median "
        "divided by the artifact's, with the 10th–90th percentile of those per-round ratios; TensorRT plans are "
        "compared with eager PyTorch on CUDA. Parity and accuracy come from the held-out images against eager "
        "PyTorch FP32.",
    ]


def _environment(report: Report) -> list[str]:
    env = report.environment
    lines = [
        "## Environment",
        "",
        f"- CPU: {env.get('cpu')} ({env.get('cores')} cores, {env.get('threads')} threads used; "
        f"integer instruction set {env.get('isa', 'not recorded')})",
    ]
    if env.get("gpu"):
        lines.append(f"- GPU: {env['gpu']}")
    lines += [
        f"- Platform: {env.get('platform')}, Python {env.get('python')}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()),
    ]
    return lines


def _verdict(row: ReportRow) -> str:
    if row.passed is None:
        return "timed only" if row.peer else "reference"
    if row.peer:
        return "pass" if row.passed else "fail"  # someone else's runtime: shown, never fails the report
    return "pass" if row.passed else "**FAIL**"


def _ratio(ratio: Ratio | None, *, reference: bool) -> str:
    if ratio is not None:
        return f"{ratio.median:.2f}× ({ratio.p10:.2f}–{ratio.p90:.2f}){' †' if wide(ratio) else ''}"
    return "1.00×" if reference else ""


def wide(ratio: Ratio) -> bool:
    """A spread whose ends lie more than OUTLIER_FACTOR times from the median: outliers, to be said as such."""
    return ratio.p90 > OUTLIER_FACTOR * ratio.median or ratio.p10 * OUTLIER_FACTOR < ratio.median


def _outliers(report: Report) -> list[str]:
    return [
        f"{row.name} batch {batch}: p10 {ratio.p10:,.2f}× and p90 {ratio.p90:,.2f}× around a median of "
        f"{ratio.median:,.2f}×"
        for row in report.rows
        for batch, ratio in sorted(row.speedup.items())
        if wide(ratio)
    ]


def _num(value: float | None, fmt: str) -> str:
    return "" if value is None else f"{value:{fmt}}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"
