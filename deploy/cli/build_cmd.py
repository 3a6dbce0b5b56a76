"""`deploy build [MODEL|ONNX ...]`: typed ONNX per precision, compiled for each --target that can compile here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from deploy.cli.options import (
    INPUT_SIZE,
    INTERPOLATION,
    LABELS,
    MEAN,
    MIN_COSINE,
    MIN_TOP1,
    NUM_CLASSES,
    RESIZE_SIZE,
    STD,
)
from deploy.cli.output import print_json, stderr, stdout
from deploy.cli.progress import step_progress
from deploy.cli.tables import Column, print_table

if TYPE_CHECKING:
    from deploy.builder import BuiltArtifact
    from deploy.targets.tensorrt.build import HardwareCompatibility, Profile


def build(
    ctx: typer.Context,
    sources: list[str] = typer.Argument(
        None, metavar="[MODEL|ONNX]...", help="Model names or exported .onnx files (default: all in export/)."
    ),
    fp32: bool = typer.Option(False, "--fp32", help="FP32 typed ONNX (a verified copy of the export)."),
    fp16: bool = typer.Option(False, "--fp16", help="FP16 by ModelOpt AutoCast."),
    int8: bool = typer.Option(False, "--int8", help="INT8 Q/DQ by ModelOpt PTQ, calibrated on CPU."),
    all_precisions: bool = typer.Option(False, "--all", help="FP32, FP16 and INT8 (the default with no flag)."),
    method: str | None = typer.Option(
        None, "--calib-method", help="INT8 calibration: entropy (default), max, or percentile (CPU INT8 targets)."
    ),
    target: list[str] = typer.Option(
        ["tensorrt"],
        "--target",
        "-t",
        help="Deployment target, repeatable: tensorrt (.plan; INT8 as S8 Q/DQ), onnxruntime (alias cpu; INT8 as "
        "U8S8 QDQ) or openvino (IR; INT8 from the U8S8 QDQ).",
    ),
    high_precision: str | None = typer.Option(
        None, "--high-precision", help="INT8: layers left unquantized, fp32 (default) or fp16."
    ),
    calib_dir: Path | None = typer.Option(None, "--calib-dir", help="Calibration images (default: calibration/)."),
    calib_count: int | None = typer.Option(None, "--calib-count", help="How many calibration images (default 500)."),
    recalibrate: bool = typer.Option(False, "--recalibrate", help="Ignore the calibration cache."),
    max_drop: float | None = typer.Option(
        None,
        "--max-drop",
        help="INT8: keep the most sensitive layers out of INT8 (in --high-precision), one at a time, until held-out "
        "accuracy (else top-1 agreement with FP32) is within this many points; exit 3 if it cannot be.",
    ),
    weights: str | None = typer.Option(
        None, "--weights", "-w", help="Weights for a model exported on demand (as for `deploy export`)."
    ),
    num_classes: int | None = NUM_CLASSES,
    labels: Path | None = LABELS,
    input_size: int | None = INPUT_SIZE,
    resize_size: int | None = RESIZE_SIZE,
    mean: str | None = MEAN,
    std: str | None = STD,
    interpolation: str | None = INTERPOLATION,
    compile_: bool | None = typer.Option(
        None,
        "--compile/--no-compile",
        "--plan/--no-plan",
        help="Compile for the target (default: when it is usable here; --compile fails where it is not).",
    ),
    min_batch: int | None = typer.Option(None, "--min-batch", help="TensorRT profile: smallest batch."),
    opt_batch: int | None = typer.Option(None, "--opt-batch", help="TensorRT profile: batch to optimise for."),
    max_batch: int | None = typer.Option(None, "--max-batch", help="TensorRT profile: largest batch."),
    min_shapes: str | None = typer.Option(
        None, "--min-shapes", "--minShapes", help="trtexec spelling: input:1x3x224x224"
    ),
    opt_shapes: str | None = typer.Option(None, "--opt-shapes", "--optShapes", help="trtexec spelling."),
    max_shapes: str | None = typer.Option(None, "--max-shapes", "--maxShapes", help="trtexec spelling."),
    workspace: float = typer.Option(4.0, "--workspace", help="TensorRT workspace limit in GiB (above 0)."),
    builder_opt_level: int = typer.Option(3, "--builder-opt-level", help="TensorRT builder optimisation level 0-5."),
    timing_cache: Path | None = typer.Option(None, "--timing-cache", help="Default: engines/timing.cache."),
    version_compatible: bool = typer.Option(False, "--version-compatible", help="Plans that load on later TRT."),
    hardware_compatibility: str = typer.Option(
        "none", "--hardware-compatibility", help="none, ampere_plus or same_compute_capability."
    ),
    verify: bool = typer.Option(
        True, "--verify/--no-verify", help="Judge each artifact against eager PyTorch before writing it (exit 3)."
    ),
    images: Path | None = typer.Option(None, "--images", help="Held-out images for that check (as `deploy verify`)."),
    count: int | None = typer.Option(None, "--count", help="Use at most N held-out images."),
    min_cosine: float | None = MIN_COSINE,
    min_top1: float | None = MIN_TOP1,
    export_dir: Path = typer.Option(Path("export"), "--export-dir", help="Where exported ONNX models are."),
    out_dir: Path = typer.Option(Path("engines"), "--out-dir", "-o", help="Where typed ONNX files go."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Bake FP32/FP16/INT8 precision into ONNX (TensorRT builds it strongly typed; ONNX Runtime runs it anywhere)."""
    import dataclasses

    from deploy.builder import BuildConfig
    from deploy.builder import build as run_build
    from deploy.cli.options import check_tolerances, customization, refuse_unused
    from deploy.errors import BadInput
    from deploy.harness.verify import ParityCheck
    from deploy.precision.calibration import DEFAULT_DIR, CalibrationConfig
    from deploy.sidecar import PRECISIONS
    from deploy.targets import get_target
    from deploy.targets.tensorrt.build import PlanOptions

    if method not in (None, "entropy", "max", "percentile"):
        raise BadInput(f"--calib-method {method!r} is unknown", hint="choose entropy, max or percentile")
    targets = tuple(dict.fromkeys(get_target(name).name for name in target))
    if compile_ is not None and not any(get_target(name).compiles for name in targets):
        # ONNX Runtime runs the typed ONNX as it is: there is nothing to compile, or to skip compiling.
        flag = "--compile" if compile_ else "--no-compile"
        raise BadInput(
            f"{flag} applies to targets with a compile step (tensorrt, openvino); {', '.join(targets)} runs the "
            "typed ONNX as it is",
            hint=f"drop {flag}, or add --target tensorrt or --target openvino",
        )
    plan_options = {
        "--min/--opt/--max-batch or shapes": any(v is not None for v in (min_batch, opt_batch, max_batch, min_shapes,
                                                                         opt_shapes, max_shapes)),
        "--workspace": workspace != 4.0,
        "--builder-opt-level": builder_opt_level != 3,
        "--timing-cache": timing_cache is not None,
        "--version-compatible": version_compatible,
        "--hardware-compatibility": hardware_compatibility != "none",
    }  # fmt: skip
    given = [name for name, set_ in plan_options.items() if set_]
    if given and "tensorrt" not in targets:
        raise BadInput(
            f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to TensorRT plans, and no --target "
            "tensorrt was given",
            hint="add --target tensorrt, or drop those options",
        )
    if max_drop is not None and not 0 <= max_drop <= 100:
        raise BadInput(f"--max-drop {max_drop:g} is not between 0 and 100 points", hint="e.g. --max-drop 0.5")
    if high_precision not in (None, "fp32", "fp16"):
        raise BadInput(f"--high-precision {high_precision!r} is unknown", hint="choose fp32 or fp16")
    chosen = [p for p, flag in zip(PRECISIONS, (fp32, fp16, int8), strict=True) if flag]
    if all_precisions and chosen:
        raise BadInput("--all conflicts with --fp32/--fp16/--int8", hint="pass --all alone, or pick precisions")
    calibrating = {"--recalibrate": recalibrate, "--calib-dir": calib_dir, "--calib-count": calib_count}
    calibration_given = ", ".join(name for name, value in calibrating.items() if value not in (None, False))
    if calibration_given and chosen and not {"int8", "fp16"} & set(chosen):
        raise BadInput(
            f"calibration options need --int8 or --fp16 ({calibration_given} given)",
            hint=f"add --int8, or drop {calibration_given}",
        )
    if chosen and "int8" not in chosen:
        # FP16 calibrates too (its activation scan) but keeps no cache, so --recalibrate would change nothing.
        refuse_unused(
            "to --int8",
            "add --int8",
            calib_method=method,
            high_precision=high_precision,
            recalibrate=recalibrate,
            max_drop=max_drop,
        )
    if not verify:
        refuse_unused(
            "to the parity check, which --no-verify skips",
            "drop --no-verify",
            images=images,
            count=count,
            min_cosine=min_cosine,
            min_top1=min_top1,
        )
    _check_plan_numbers(workspace, builder_opt_level)
    calibration = CalibrationConfig(directory=calib_dir or DEFAULT_DIR, explicit=calib_dir is not None)
    if calib_count is not None:
        calibration = dataclasses.replace(calibration, count=calib_count)
    config = BuildConfig(
        sources=tuple(sources or ()),
        targets=targets,
        precisions=tuple(chosen) or PRECISIONS,
        export_dir=export_dir,
        engines_dir=out_dir,
        calibration=calibration,
        method=method or "entropy",  # type: ignore[arg-type]
        high_precision=high_precision or "fp32",  # type: ignore[arg-type]
        recalibrate=recalibrate,
        max_drop=max_drop,
        weights=weights,
        custom=customization(
            num_classes=num_classes,
            labels=labels,
            input_size=input_size,
            resize_size=resize_size,
            mean=mean,
            std=std,
            interpolation=interpolation,
        ),
        verify=ParityCheck(images, count, check_tolerances(min_cosine=min_cosine, min_top1=min_top1))
        if verify
        else None,
    )
    config = dataclasses.replace(
        config,
        compile=compile_,
        options=(
            PlanOptions(
                profile=_profile(min_batch, opt_batch, max_batch, min_shapes, opt_shapes, max_shapes),
                workspace_gib=workspace,
                builder_optimization_level=builder_opt_level,
                timing_cache=timing_cache,
                version_compatible=version_compatible,
                hardware_compatibility=_hardware(hardware_compatibility),
            ),
        ),
    )
    with step_progress(ctx) as progress:
        result = run_build(config, progress=progress)
    for warning in result.warnings:
        stderr.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    if as_json:
        print_json(result, passed=result.passed)
        result.raise_for_parity()
        return
    columns = (
        Column("model", key=True),
        Column("artifact kind", key=True),
        Column("file", key=True),
        Column("size MB", justify="right"),
        Column("calibration / compile"),
        Column("parity vs reference"),
        Column("seconds", justify="right"),
    )
    rows = []
    for artifact in result.artifacts + result.rejected:
        notes = artifact.summary
        if artifact.reused_calibration is not None:
            notes = "cache reused" if artifact.reused_calibration else "calibrated"
        rows.append(
            (
                escape(artifact.model),
                escape(artifact.name),
                escape(str(artifact.path)),
                f"{artifact.sidecar.size_bytes / 1e6:.1f}",
                escape(notes),
                _parity_cell(artifact),
                f"{artifact.seconds:.1f}",
            )
        )
    print_table(stdout, "deploy build", columns, rows)
    for status in result.statuses:
        stderr.print(status, highlight=False, markup=False)
    for name in (name for name in targets if not get_target(name).compiles):
        # Said out loud: its artifact is the typed ONNX in the table, the same file for every target that has no
        # compile step (an FP16 or FP32 typed ONNX does not depend on the target; INT8 follows its recipe).
        stderr.print(f"{name}: runs the typed ONNX above as it is (no compile step)", highlight=False, markup=False)
    result.raise_for_parity()


def _parity_cell(artifact: BuiltArtifact) -> str:
    from deploy.imported import EAGER_REFERENCE

    verdict = artifact.verdict
    if verdict is None:
        return "not verified"
    out = verdict.parity.outputs[0]
    text = f"cosine min {out.cosine_min:.4f}"
    if verdict.artifact_accuracy is not None and verdict.eager_accuracy is not None:
        text += f", accuracy {verdict.eager_accuracy:.2%} → {verdict.artifact_accuracy:.2%}"
    if verdict.reference != EAGER_REFERENCE:
        text += f" (vs {verdict.reference})"
    if verdict.passed:
        return f"[green]pass[/green] {text}"
    return f"[red]FAIL, not written[/red] {text}"


def _profile(
    min_batch: int | None,
    opt_batch: int | None,
    max_batch: int | None,
    min_shapes: str | None,
    opt_shapes: str | None,
    max_shapes: str | None,
) -> Profile | None:
    """The batch profile from --min/--opt/--max-batch or trtexec's --minShapes/--optShapes/--maxShapes."""
    from deploy.errors import BadInput
    from deploy.harness.checks import MAX_BATCH, check_int
    from deploy.targets.tensorrt.build import Profile, parse_shape_spec

    batches = [min_batch, opt_batch, max_batch]
    for index, spec in enumerate((min_shapes, opt_shapes, max_shapes)):
        if spec is None:
            continue
        shapes = parse_shape_spec(spec)
        if len(shapes) != 1:
            raise BadInput(f"shape spec {spec!r} names {len(shapes)} inputs; these models have one")
        batch = next(iter(shapes.values()))[0]
        if batches[index] is not None and batches[index] != batch:
            raise BadInput(f"batch {batches[index]} conflicts with shape spec {spec!r}", hint="pass one spelling")
        batches[index] = batch
    if all(b is None for b in batches):
        return None
    if any(b is None for b in batches):
        raise BadInput("a batch profile needs min, opt and max", hint="pass --min-batch, --opt-batch and --max-batch")
    low, opt, high = (int(b or 0) for b in batches)
    for option, value, example in (("--min-batch", low, 1), ("--opt-batch", opt, 8), ("--max-batch", high, 32)):
        check_int(option, value, low=1, high=MAX_BATCH, example=example)
    if not low <= opt <= high:
        raise BadInput(
            f"batch profile min {low}, opt {opt}, max {high} must satisfy min <= opt <= max",
            hint="e.g. --min-batch 1 --opt-batch 8 --max-batch 32",
        )
    return Profile(low, opt, high)


def _check_plan_numbers(workspace: float, builder_opt_level: int) -> None:
    """TensorRT's numeric build options, refused here before any work (a machine without TensorRT never
    reaches the plan build that would read them)."""
    from deploy.harness.checks import check_float, check_int

    check_float("--workspace", workspace, low=0.0, open_low=True, example=4)
    check_int("--builder-opt-level", builder_opt_level, low=0, high=5, example=3)  # trtexec's range


def _hardware(level: str) -> HardwareCompatibility:
    from deploy.errors import BadInput

    if level not in ("none", "ampere_plus", "same_compute_capability"):
        raise BadInput(
            f"--hardware-compatibility {level!r} is unknown", hint="none, ampere_plus or same_compute_capability"
        )
    return level  # type: ignore[return-value]
