"""PyTorch → ONNX with the torch.export-based exporter, simplified, checked, parity-verified, written atomically."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from PIL import Image

from deploy import __version__
from deploy.backends.base import TensorMeta
from deploy.backends.torch_runner import TorchRunner
from deploy.errors import BadInput, ExportFailed, ParityError, first_line
from deploy.files import Staging, ensure_writable_dir, sha256_file
from deploy.harness.compare import DEFAULT_TOLERANCES, ParityReport, Tolerance, run_parity
from deploy.preprocessing import preprocess_batch
from deploy.samples import samples_for
from deploy.sidecar import (
    BatchRange,
    Sidecar,
    TensorInfo,
    WeightsInfo,
    onnxruntime_version,
    package_versions,
    sidecar_path,
)
from deploy.simplify import Simplifier, SimplifyResult, simplify
from deploy.targets.onnxruntime.runner import OrtRunner
from deploy.zoo import LoadedModel, get_spec, load_model

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
MIN_OPSET = 18  # the torch.export-based exporter emits opset 18 natively and converts upwards only
MAX_OPSET = 23
BATCH_DIM = "batch"
# Simplification must not change the graph's arithmetic beyond float re-association.
SIMPLIFY_TOLERANCE = Tolerance(atol=1e-5, rtol=1e-4, min_cosine=0.99999)


@dataclass(frozen=True)
class ExportConfig:
    model: str
    weights: str | None = None  # None: the model's default (pretrained for torchvision models)
    out_dir: Path = Path("export")
    opset: int = 20
    max_batch: int = 32
    static: bool = False
    static_batch: int = 1
    simplifier: Simplifier = "onnxsim"
    verify: bool = True
    tolerance: Tolerance = field(default_factory=lambda: DEFAULT_TOLERANCES["fp32"])
    parity_samples: int = 8
    name: str | None = None  # file stem; defaults to the model name


@dataclass(frozen=True)
class ExportResult:
    onnx_path: Path
    sidecar_path: Path
    sidecar: Sidecar
    simplification: SimplifyResult
    parity: ParityReport | None
    simplification_parity: ParityReport | None


def export_model(config: ExportConfig, *, progress: Progress | None = None) -> ExportResult:
    """Export one zoo model; nothing is left on disk unless every check passed (or was waived by verify=False)."""
    say = progress or (lambda _message: None)
    _validate(config)
    spec = get_spec(config.model)
    out_dir = ensure_writable_dir(config.out_dir)
    started = time.perf_counter()

    say(f"loading {spec.name} ({config.weights or spec.default_weights} weights)")
    loaded = load_model(spec, config.weights)

    say(f"exporting with torch.export (opset {config.opset}, {_batch_text(config)})")
    raw = _torch_export(loaded, config)

    say(f"simplifying with {config.simplifier}")
    simplified, simplification = simplify(raw, config.simplifier)
    _check(simplified, "simplified graph")

    stem = config.name or spec.name
    onnx_path, json_path = out_dir / f"{stem}.onnx", out_dir / f"{stem}.json"
    samples = samples_for(spec.sample_set, config.parity_samples)
    feeds = list(_parity_feeds(loaded, config, [sample.image for sample in samples]))
    input_meta = (TensorMeta(spec.input_name, _input_shape(config, spec.input_shape), "float32"),)

    with Staging() as staging:
        onnx_tmp = staging.path_for(onnx_path)
        onnx.save_model(simplified, onnx_tmp)

        simplification_parity = None
        if config.simplifier != "none":
            say("checking the simplified graph against the exported one")
            with OrtRunner(raw.SerializeToString()) as before, OrtRunner(onnx_tmp) as after:
                simplification_parity = run_parity(before, after, feeds, SIMPLIFY_TOLERANCE)
            if not simplification_parity:
                raise ExportFailed(
                    f"{config.simplifier} changed the model's outputs ({simplification_parity.summary()})",
                    hint="retry with --simplifier onnxslim or --simplifier none",
                )

        parity = None
        with OrtRunner(onnx_tmp) as ort_runner:
            outputs = tuple(TensorInfo(o.name, o.shape, o.dtype) for o in ort_runner.outputs)
            if config.verify:
                say(f"verifying parity: eager PyTorch vs ONNX Runtime on {config.parity_samples} sample images")
                torch_runner = TorchRunner(loaded.module, inputs=input_meta, output_names=[o.name for o in outputs])
                with torch_runner:
                    parity = run_parity(
                        torch_runner,
                        ort_runner,
                        feeds,
                        config.tolerance,
                        input_names=tuple(sample.name for sample in samples),
                    )

        sidecar = Sidecar(
            model=spec.name,
            family=spec.family,
            weights=WeightsInfo.from_dict(loaded.source.to_dict()),
            inputs=(TensorInfo(spec.input_name, input_meta[0].shape),),
            outputs=outputs,
            batch=_batch_range(config),
            preprocessing=loaded.source.preprocessing,
            labels=loaded.source.labels,
            labels_source=loaded.source.labels_source,
            opset=config.opset,
            artifact=onnx_path.name,
            sha256=sha256_file(onnx_tmp),
            size_bytes=onnx_tmp.stat().st_size,
            num_params=loaded.num_params,
            simplifier={
                "tool": simplification.tool,
                "version": simplification.version,
                "nodes_before": simplification.nodes_before,
                "nodes_after": simplification.nodes_after,
                "max_abs_change": None
                if simplification_parity is None
                else max(o.max_abs for o in simplification_parity.outputs),
            },
            versions={
                "deploy": __version__,
                **package_versions("torch", "torchvision", "onnx", "onnxscript", "onnxruntime-gpu", "onnxruntime"),
                "onnxruntime_runtime": onnxruntime_version(),
            },
            export_seconds=round(time.perf_counter() - started, 3),
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            parity=None if parity is None else parity.to_dict(),
        )
        if parity is not None and not parity:
            raise ParityError(
                f"{spec.name}: ONNX Runtime output differs from eager PyTorch ({parity.summary()})",
                hint="nothing was written; loosen with --atol/--rtol, or keep the file for inspection with --no-verify",
            )
        staging.path_for(json_path).write_text(sidecar.to_json(), encoding="utf-8")
        staging.commit()

    say(f"wrote {onnx_path} and {json_path}")
    return ExportResult(onnx_path, sidecar_path(onnx_path), sidecar, simplification, parity, simplification_parity)


def _validate(config: ExportConfig) -> None:
    if not MIN_OPSET <= config.opset <= MAX_OPSET:
        raise BadInput(
            f"--opset {config.opset} is not supported",
            hint=f"choose an opset from {MIN_OPSET} to {MAX_OPSET}",
        )
    if config.max_batch < 1 or config.static_batch < 1:
        raise BadInput("batch sizes must be at least 1", hint="pass --max-batch N (or --batch N with --static)")
    if config.parity_samples < 1:
        raise BadInput("parity needs at least one sample image", hint="pass --samples N with N >= 1")


def _batch_text(config: ExportConfig) -> str:
    return f"static batch {config.static_batch}" if config.static else f"dynamic batch 1..{config.max_batch}"


def _batch_range(config: ExportConfig) -> BatchRange:
    if config.static:
        return BatchRange(dynamic=False, min=config.static_batch, max=config.static_batch)
    return BatchRange(dynamic=True, min=1, max=config.max_batch)


def _input_shape(config: ExportConfig, chw: tuple[int, int, int]) -> tuple[int | str, ...]:
    return (config.static_batch if config.static else BATCH_DIM, *chw)


def _torch_export(loaded: LoadedModel, config: ExportConfig) -> onnx.ModelProto:
    spec = loaded.spec
    # An example batch of 2: torch.export specialises a dimension whose example value is 1.
    example_batch = config.static_batch if config.static else min(2, config.max_batch)
    example = torch.randn(example_batch, *spec.input_shape)
    dynamic_shapes = None
    if not config.static:
        batch = torch.export.Dim(BATCH_DIM, min=1, max=max(config.max_batch, 2))
        dynamic_shapes = ({0: batch},)
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                loaded.module,
                (example,),
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
                opset_version=config.opset,
                input_names=[spec.input_name],
                output_names=[spec.output_name],
                external_data=False,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many unrelated types; all mean "this model did not export"
        log.debug("exporter output:\n%s", chatter.getvalue())
        raise ExportFailed(
            f"torch.onnx.export failed for {spec.name}: {first_line(exc)}", hint="rerun with --debug"
        ) from exc
    log.debug("exporter output:\n%s", chatter.getvalue())
    if program is None:
        raise ExportFailed(f"torch.onnx.export returned no program for {spec.name}", hint="rerun with --debug")
    model = program.model_proto
    _check(model, "exported graph")
    return model


def _check(model: onnx.ModelProto, what: str) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportFailed(f"onnx.checker rejected the {what}: {exc}", hint="rerun with --debug") from exc


def _parity_feeds(
    loaded: LoadedModel, config: ExportConfig, pictures: list[Image.Image]
) -> Iterator[Mapping[str, np.ndarray]]:
    """A batch of one first, then the rest in larger batches, so the dynamic batch dimension is exercised."""
    images = preprocess_batch(pictures, loaded.source.preprocessing)
    name = loaded.spec.input_name
    if config.static:
        size = config.static_batch
        padded = np.concatenate([images] * (-(-size // len(images)))) if len(images) < size else images
        usable = len(padded) - len(padded) % size
        for start in range(0, usable, size):
            yield {name: padded[start : start + size]}
        return
    yield {name: images[:1]}
    step = min(8, config.max_batch)
    for start in range(1, len(images), step):
        yield {name: images[start : start + step]}
