"""CPU benchmark: deploy's artifacts against eager PyTorch and the peers (OpenVINO, torch.compile), one model at a
time, everything timed interleaved in one run per model, and the issue's CPU targets checked from those numbers.

    python benchmarks/cpu_peers.py resnet50 googlenet densenet121 vgg16 --weights random --threads 2

Each model goes through `deploy pipeline --peers` (export, FP32/FP16/INT8 builds, verification against eager,
interleaved timing), so reports/<model>/report.{md,json,png} hold every row including the peers; this script then
prints the ratios the targets are stated in and writes reports/index.md. Peers need `pip install -e ".[bench]"`
(OpenVINO) and a C compiler (torch.compile); missing ones are skipped with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from deploy.cli.options import parse_batches
from deploy.errors import DeployError, ParityError
from deploy.harness.interleaved import InterleavedConfig
from deploy.harness.peers import available_peers
from deploy.pipeline import PipelineConfig, run_pipeline
from deploy.report.index import best_row, render_reports
from deploy.report.model import Report, ReportRow
from deploy.targets import get_target
from deploy.zoo import get_spec

TARGETS = {"onnx_fp32_vs_eager": 2.0, "cpu_int8_vs_onnx_fp32": 3.0, "best_ours_vs_best_peer": 1.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--weights", default=None, help="as for `deploy export` (default: the model's default)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of interleaved timing per batch")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--cpu-calib-method", default="entropy", choices=("entropy", "max", "percentile"))
    parser.add_argument(
        "--targets", default="onnxruntime,openvino", help="deployment targets to build (a CPU benchmark: no TensorRT)"
    )
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)

    peers, unavailable = available_peers()
    for reason in unavailable:
        print(f"peer skipped: {reason}", file=sys.stderr)
    bench = InterleavedConfig(artifacts=(), batches=parse_batches(args.batch), duration_s=args.duration)
    if args.threads:
        bench = dataclasses.replace(bench, threads=args.threads)
    done = 0
    for requested in args.models:
        try:
            model = get_spec(requested).name
        except DeployError as exc:
            print(f"{requested}: {exc.message} ({exc.hint})", file=sys.stderr)
            continue
        config = PipelineConfig(
            model=model,
            weights=args.weights,
            reports_dir=args.reports_dir,
            cpu_method=args.cpu_calib_method,
            targets=tuple(get_target(name).name for name in args.targets.split(",")),
            bench=bench,
            peers=peers,
        )
        try:
            run_pipeline(config, progress=lambda message: print(f"  {message}", file=sys.stderr))
        except ParityError as exc:  # the report is written; failing rows are excluded from "ours" below
            print(f"{model}: {exc.message}", file=sys.stderr)
        except DeployError as exc:
            print(f"{model}: {exc.message} ({exc.hint})", file=sys.stderr)
            continue
        print(summary(Report.read(args.reports_dir / model / "report.json")))
        done += 1
    if not done:
        return 1
    render_reports(args.reports_dir, every=True)
    return 0


def summary(report: Report, batch: int = 1) -> str:
    rows = {row.name: row for row in report.rows}
    ours = best_row(report, batch)
    peers = [r for r in report.rows if r.peer and r.passed and batch in r.latency]
    best_peer = min(peers, key=lambda r: r.latency[batch].p50_ms, default=None)
    cpu_int8 = next(
        (r for r in report.rows if r.label and r.label.is_cpu_int8 and r.label.target == "onnxruntime"), None
    )
    lines = [
        f"{report.model} (batch {batch}, {report.environment.get('threads')} threads, {report.environment['cpu']})"
    ]
    lines.append("  " + ", ".join(f"{r.name} {_p50(r, batch)}" for r in report.rows if batch in r.latency))
    checks = [
        ("ONNX FP32 vs eager", _speedup(rows.get("fp32"), batch), TARGETS["onnx_fp32_vs_eager"]),
        ("CPU INT8 vs ONNX FP32", _ratio(rows.get("fp32"), cpu_int8, batch), TARGETS["cpu_int8_vs_onnx_fp32"]),
        (f"best ours ({_name(ours)}) vs best peer ({_name(best_peer)})", _ratio(best_peer, ours, batch),
         TARGETS["best_ours_vs_best_peer"]),
    ]  # fmt: skip
    for label, value, target in checks:
        verdict = "n/a" if value is None else ("meets" if value >= target else "MISSES")
        shown = "n/a" if value is None else f"{value:.2f}×"
        lines.append(f"  {label}: {shown} (target ≥ {target:g}×: {verdict})")
    if cpu_int8 is not None:
        lines.append(
            f"  {cpu_int8.name}: parity {'pass' if cpu_int8.passed else 'FAIL'}, cosine min {cpu_int8.cosine_min:.4f}, "
            f"top-1 agreement {cpu_int8.top1_agreement:.1%}"
        )
    return "\n".join(lines)


def _p50(row: ReportRow, batch: int) -> str:
    return f"{row.latency[batch].p50_ms:.2f} ms"


def _name(row: ReportRow | None) -> str:
    return "none" if row is None else row.name


def _speedup(row: ReportRow | None, batch: int) -> float | None:
    ratio = None if row is None else row.speedup.get(batch)
    return None if ratio is None else ratio.median


def _ratio(slower: ReportRow | None, faster: ReportRow | None, batch: int) -> float | None:
    """p50 of `slower` over p50 of `faster`, both from the same interleaved run."""
    if slower is None or faster is None or batch not in slower.latency or batch not in faster.latency:
        return None
    return slower.latency[batch].p50_ms / faster.latency[batch].p50_ms


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DeployError as exc:  # bad options: one line and the fix, like the CLI
        print(f"error: {exc.message}\nfix: {exc.hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
