"""CPU INT8 on this CPU's integer kernels: the shipped 7-bit weights against full 8-bit ones, side by side.

    python benchmarks/cpu_int8_kernels.py lenet5 resnet18 --weights random --threads 2

Per model: the export (ONNX FP32), deploy's CPU INT8 (7-bit weights, exact on every x86 CPU), and a copy of it
with the weights widened to 8 bits, run twice: with the U8S8 kernels this CPU picks (they saturate without
VNNI/AMX) and with ONNX Runtime's exact U8U8 kernels (`session.x64quantprecision=1`, what deploy's runner sets
for full-range weights on such a CPU). All four are checked against eager PyTorch on the held-out images and timed
interleaved in one run; the table gives cosine, accuracy when labelled, p50 and the ratios. Run it on a VNNI or AMX
machine to see what 7-bit weights cost there (the kernel is the same, so the latency should be too).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import onnx

from deploy.backends.base import Runner
from deploy.builder import BuildConfig, build
from deploy.environment import CpuIsa, cpu_isa, cpu_name
from deploy.errors import DeployError
from deploy.exporter import ExportConfig, export_model
from deploy.harness.heldout import held_out_set
from deploy.harness.interleaved import InterleavedConfig, bench
from deploy.harness.verify import ArtifactVerdict, check_runner, eager_outputs, tolerance_for
from deploy.precision.calibration import CalibrationConfig
from deploy.targets.onnxruntime.runner import OrtRunner
from deploy.targets.onnxruntime.u8s8 import widen_int8_weights

# Pinned levels make the runner keep or replace the U8S8 kernels whatever this CPU is.
KEEP_U8S8 = CpuIsa("avx512-vnni", "pinned: keep the U8S8 kernels this CPU has")
EXACT_U8U8 = CpuIsa("avx2", "pinned: ONNX Runtime's exact U8U8 kernels")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--weights", default=None, help="as for `deploy export` (default: the model's default)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of interleaved timing (batch 1)")
    parser.add_argument("--calib-method", default="entropy", choices=("entropy", "max", "percentile"))
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_name()}, {cpu_isa().describe()}")
    with tempfile.TemporaryDirectory(prefix="deploy-int8-kernels-") as scratch:
        for model in args.models:
            try:
                _one(model, Path(scratch) / model, args)
            except DeployError as exc:
                print(f"{model}: {exc.message} ({exc.hint})", file=sys.stderr)
                return exc.exit_code
    return 0


def _one(model: str, root: Path, args: argparse.Namespace) -> None:
    export = export_model(ExportConfig(model=model, weights=args.weights, out_dir=root / "export"))
    config = BuildConfig(
        sources=(str(export.onnx_path),),
        precisions=("int8",),
        engines_dir=root / "engines",
        calibration=CalibrationConfig(directory=root / "calibration"),
        method=args.calib_method,
        targets=("onnxruntime",),
    )
    built = build(config)
    built.raise_for_parity()
    shipped = built.artifacts[0]
    widened = root / "engines" / f"{shipped.path.stem}.8bit.onnx"
    onnx.save(widen_int8_weights(onnx.load(shipped.path)), widened)
    extra: dict[str, Runner] = {
        "8-bit U8S8": OrtRunner(widened, isa=KEEP_U8S8, intra_op_threads=args.threads),
        "8-bit U8U8": OrtRunner(widened, isa=EXACT_U8U8, intra_op_threads=args.threads),
    }
    sidecar = shipped.sidecar
    held = held_out_set(sidecar, images=None, count=None)
    reference = eager_outputs(sidecar, held)
    tolerance = tolerance_for("int8", sidecar.weights.kind, {})
    verdicts: dict[str, ArtifactVerdict] = {}
    for name, runner in {"7-bit (shipped)": OrtRunner(shipped.path), **extra}.items():
        with runner:
            verdicts[name] = check_runner(runner, name, name, tolerance, sidecar, held, reference)
    timing = InterleavedConfig(artifacts=(export.onnx_path, shipped.path), batches=(1,), duration_s=args.duration)
    if args.threads:
        timing = dataclasses.replace(timing, threads=args.threads)
    latency = bench(timing, extra=extra).batches[0].latency
    fp32, seven = latency[export.onnx_path.name].p50_ms, latency[shipped.path.name].p50_ms
    print(f"\n{model} ({sidecar.weights.kind} weights, {len(held.arrays)} held-out images, batch 1, p50):")
    print(f"  ONNX FP32            {fp32:8.3f} ms")
    for name, runner_name in (
        ("7-bit (shipped)", shipped.path.name),
        ("8-bit U8S8", "8-bit U8S8"),
        ("8-bit U8U8", "8-bit U8U8"),
    ):
        verdict, p50 = verdicts[name], latency[runner_name].p50_ms
        out = verdict.parity.outputs[0]
        accuracy = "" if verdict.artifact_accuracy is None else f", accuracy {verdict.artifact_accuracy:.2%}"
        print(
            f"  {name:<20} {p50:8.3f} ms  {fp32 / p50:5.2f}× FP32  {seven / p50:5.2f}× 7-bit  "
            f"cosine min {out.cosine_min:.4f}{accuracy}  {'pass' if verdict.passed else 'FAIL'}"
        )
    if verdicts["7-bit (shipped)"].eager_accuracy is not None:
        print(f"  eager accuracy {verdicts['7-bit (shipped)'].eager_accuracy:.2%}")


if __name__ == "__main__":
    sys.exit(main())
