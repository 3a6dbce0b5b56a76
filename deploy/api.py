"""The Python API: the CLI's commands as functions returning the dataclasses the CLI renders.

Each function builds the same config the command line does and calls the same library function, so a notebook and
a shell give the same artifacts and verdicts. Import through `deploy` (`deploy.export(...)`): the package loads
this module, and with it torch and ONNX, only when one of these names is first used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from deploy.customization import Customization, read_labels

if TYPE_CHECKING:
    from torch import nn

    from deploy.builder import BuildResult
    from deploy.exporter import ExportResult
    from deploy.harness.classify import Predictor
    from deploy.harness.interleaved import InterleavedResult
    from deploy.harness.verify import VerifyResult
    from deploy.onnx_import import ImportResult
    from deploy.pipeline import PipelineResult

PathLike = str | os.PathLike[str]
Labels = Sequence[str] | PathLike | None
Progress = Callable[[str], None]


def export(
    model: str | nn.Module,
    *,
    name: str | None = None,
    weights: PathLike | None = None,
    out_dir: PathLike = "export",
    num_classes: int | None = None,
    labels: Labels = None,
    input_size: int | None = None,
    resize_size: int | None = None,
    mean: Sequence[float] | float | None = None,
    std: Sequence[float] | float | None = None,
    interpolation: str | None = None,
    color: str = "RGB",
    max_batch: int | None = None,
    opset: int = 20,
    progress: Progress | None = None,
) -> ExportResult:
    """`deploy export`: a registered architecture by name (with `weights`, e.g. your fine-tune's checkpoint), or
    your own `nn.Module` under `name` (then `input_size` is required; `color` "L" for gray input). The ONNX and its
    sidecar go to `out_dir`; the result holds both paths, the sidecar and the parity report."""
    from deploy.exporter import ExportConfig, export_model, export_module

    custom = _customization(num_classes, labels, input_size, resize_size, mean, std, interpolation)
    if isinstance(model, str):
        config = ExportConfig(
            model=model,
            weights=None if weights is None else str(weights),
            out_dir=Path(out_dir),
            opset=opset,
            max_batch=max_batch,
            name=name,
            custom=custom,
        )
        return export_model(config, progress=progress)
    if name is None:
        from deploy.errors import BadInput

        raise BadInput("your module needs a name", hint="pass name='my_classifier' (it names export/NAME.onnx)")
    if weights is not None:
        from deploy.errors import BadInput

        raise BadInput("weights= applies to registered architectures", hint="load your weights into the module first")
    config = ExportConfig(model=name, out_dir=Path(out_dir), opset=opset, max_batch=max_batch, custom=custom)
    return export_module(model, config, color=color, progress=progress)


def import_onnx(
    path: PathLike,
    *,
    name: str | None = None,
    out_dir: PathLike = "export",
    labels: Labels = None,
    input_size: int | None = None,
    resize_size: int | None = None,
    mean: Sequence[float] | float | None = None,
    std: Sequence[float] | float | None = None,
    interpolation: str | None = None,
    max_batch: int | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """`deploy import`: an ONNX classifier made elsewhere, copied beside a sidecar so every command takes it."""
    from deploy.onnx_import import ImportConfig
    from deploy.onnx_import import import_onnx as run_import

    custom = _customization(None, labels, input_size, resize_size, mean, std, interpolation)
    config = ImportConfig(source=Path(path), name=name, out_dir=Path(out_dir), custom=custom, max_batch=max_batch)
    return run_import(config, progress=progress)


def build(
    model: PathLike,
    *,
    precisions: Sequence[str] = ("fp32", "fp16", "int8"),
    targets: Sequence[str] = ("tensorrt",),
    method: str = "entropy",
    calib_dir: PathLike | None = None,
    calib_count: int = 500,
    export_dir: PathLike = "export",
    out_dir: PathLike = "engines",
    verify: bool = True,
    check: bool = True,
    progress: Progress | None = None,
) -> BuildResult:
    """`deploy build`: typed FP32/FP16/INT8 ONNX of an export (by model name or .onnx path), compiled for each of
    `targets` where it can be here ("onnxruntime", "openvino", "tensorrt"), each judged before it is published.

    An artifact that fails parity is never published; with `check` (as the command's exit code) that raises
    ParityError naming it, without it the result lists it under `rejected`."""
    from deploy.builder import BuildConfig
    from deploy.builder import build as run_build
    from deploy.harness.verify import ParityCheck
    from deploy.precision.calibration import DEFAULT_DIR, CalibrationConfig

    calibration = CalibrationConfig(
        directory=DEFAULT_DIR if calib_dir is None else Path(calib_dir),
        count=calib_count,
        explicit=calib_dir is not None,
    )
    config = BuildConfig(
        sources=(str(model),),
        precisions=tuple(precisions),  # type: ignore[arg-type]  # BuildConfig's checks name a bad one
        targets=tuple(targets),
        export_dir=Path(export_dir),
        engines_dir=Path(out_dir),
        calibration=calibration,
        method=method,  # type: ignore[arg-type]
        verify=ParityCheck() if verify else None,
    )
    result = run_build(config, progress=progress)
    if check:
        result.raise_for_parity()
    return result


def verify(
    *artifacts: PathLike, images: PathLike | None = None, count: int | None = None, progress: Progress | None = None
) -> VerifyResult:
    """`deploy verify`: each artifact against its reference on held-out images (`images`: a folder, class
    subfolders give labels); the result is truthy when every artifact passed."""
    from deploy.harness.verify import VerifyConfig
    from deploy.harness.verify import verify as run_verify

    config = VerifyConfig(
        tuple(Path(a) for a in artifacts), images=None if images is None else Path(images), count=count
    )
    return run_verify(config, progress=progress)


def bench(
    *artifacts: PathLike,
    batches: Sequence[int] | None = None,
    duration: float = 5.0,
    threads: int | None = None,
    progress: Progress | None = None,
) -> InterleavedResult:
    """`deploy bench`: artifacts and their reference timed in interleaved rounds; speed-ups are measured side by
    side in this one run."""
    import dataclasses

    from deploy.harness.interleaved import InterleavedConfig
    from deploy.harness.interleaved import bench as run_bench

    config = InterleavedConfig(
        artifacts=tuple(Path(a) for a in artifacts),
        batches=None if batches is None else tuple(batches),
        duration_s=duration,
    )
    if threads is not None:
        config = dataclasses.replace(config, threads=threads)
    return run_bench(config, progress=progress)


def run_pipeline(
    model: str,
    *,
    weights: PathLike | None = None,
    num_classes: int | None = None,
    labels: Labels = None,
    input_size: int | None = None,
    mean: Sequence[float] | float | None = None,
    std: Sequence[float] | float | None = None,
    images: PathLike | None = None,
    reports_dir: PathLike = "reports",
    progress: Progress | None = None,
) -> PipelineResult:
    """`deploy pipeline`: export, build every precision and target, verify, time, and write the report."""
    from deploy.pipeline import PipelineConfig
    from deploy.pipeline import run_pipeline as run

    config = PipelineConfig(
        model=model,
        weights=None if weights is None else str(weights),
        custom=_customization(num_classes, labels, input_size, None, mean, std, None),
        images=None if images is None else Path(images),
        reports_dir=Path(reports_dir),
    )
    return run(config, progress=progress)


def load(artifact: PathLike, *, model: str | None = None, threads: int | None = None) -> Predictor:
    """A deployed artifact as a classifier: `predict(images)` takes file paths, PIL images or arrays and returns
    top-k labels, with the sidecar's preprocessing. Use it in a `with` block (or call `close()`)."""
    from deploy.harness.classify import Predictor

    return Predictor(artifact, model=model, threads=threads)


def _customization(
    num_classes: int | None,
    labels: Labels,
    input_size: int | None,
    resize_size: int | None,
    mean: Sequence[float] | float | None,
    std: Sequence[float] | float | None,
    interpolation: str | None,
) -> Customization:
    if labels is None or isinstance(labels, (str, os.PathLike)):
        names = None if labels is None else read_labels(Path(labels))
        source = None if labels is None else str(labels)
    else:
        names, source = tuple(str(label) for label in labels), None
    return Customization(
        num_classes=num_classes,
        labels=names,
        labels_source=source,
        input_size=input_size,
        resize_size=resize_size,
        mean=_floats(mean, "mean"),
        std=_floats(std, "std"),
        interpolation=interpolation,  # type: ignore[arg-type]  # Customization names a bad one
    )


def _floats(values: Sequence[float] | float | None, name: str) -> tuple[float, ...] | None:
    """A sequence of numbers (one per channel), or one number for a gray model."""
    if values is None:
        return None
    try:
        return (float(values),) if isinstance(values, int | float) else tuple(float(v) for v in values)
    except (TypeError, ValueError):
        from deploy.errors import BadInput

        raise BadInput(
            f"{name}={values!r} is not a list of numbers", hint=f"pass e.g. {name}=[0.5, 0.5, 0.5]"
        ) from None
