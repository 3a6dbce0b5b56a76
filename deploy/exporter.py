"""PyTorch → ONNX with the torch.export-based exporter, simplified, checked, parity-verified, written atomically."""

from __future__ import annotations

import contextlib
import dataclasses
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
from torch import nn

from deploy import __version__
from deploy.backends.base import TensorMeta
from deploy.backends.torch_runner import TorchRunner
from deploy.customization import Customization
from deploy.errors import BadInput, ExportFailed, ParityError, first_line
from deploy.files import Staging, ensure_writable_dir, sha256_file
from deploy.harness.checks import MAX_BATCH, check_int
from deploy.harness.compare import DEFAULT_TOLERANCES, ParityReport, Tolerance, run_parity
from deploy.imported import MODEL_NAME, MODULE_KIND
from deploy.preprocessing import preprocess_batch
from deploy.progress import Step
from deploy.samples import SampleSet, sample_count, samples_for
from deploy.sidecar import (
    BatchRange,
    HeadInfo,
    Sidecar,
    TensorInfo,
    WeightsInfo,
    onnxruntime_version,
    package_versions,
    sidecar_path,
)
from deploy.simplify import SIMPLIFIERS, Simplifier, SimplifyResult, simplify
from deploy.targets.onnxruntime.runner import OrtRunner
from deploy.zoo import LoadedModel, get_spec, list_models, load_model
from deploy.zoo.own import own_model

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
MIN_OPSET = 18  # the torch.export-based exporter emits opset 18 natively and converts upwards only
MAX_OPSET = 23
DEFAULT_MAX_BATCH = 32
BATCH_DIM = "batch"
# Simplification must not change the graph's arithmetic beyond float re-association.
SIMPLIFY_TOLERANCE = Tolerance(atol=1e-5, rtol=1e-4, min_cosine=0.99999)


@dataclass(frozen=True)
class ExportConfig:
    model: str
    weights: str | None = None  # None: the model's default (pretrained for torchvision models)
    out_dir: Path = Path("export")
    opset: int = 20
    # The batch dimension: dynamic from 1 to `max_batch` (None: DEFAULT_MAX_BATCH), or with `static`, fixed at
    # `static_batch` (None: 1). Each applies to its own kind only: see _validate.
    max_batch: int | None = None
    static: bool = False
    static_batch: int | None = None
    simplifier: Simplifier = "onnxsim"
    verify: bool = True
    tolerance: Tolerance = field(default_factory=lambda: DEFAULT_TOLERANCES["fp32"])
    parity_samples: int = 8
    name: str | None = None  # file stem; defaults to the model name
    custom: Customization = field(default_factory=Customization)  # a fine-tune's classes, labels, preprocessing

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def batch_range(self) -> BatchRange:
        if self.static:
            batch = self.static_batch or 1
            return BatchRange(dynamic=False, min=batch, max=batch)
        return BatchRange(dynamic=True, min=1, max=self.max_batch or DEFAULT_MAX_BATCH)


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
    spec = get_spec(config.model)
    if config.name is not None and config.name.lower() in list_models() and config.name.lower() != spec.name:
        raise BadInput(
            f"name {config.name!r} is another registered architecture: later commands would take this {spec.name} "
            f"export for it",
            hint=f"pass another name, e.g. my_{spec.name}",
        )
    _check_samples(spec.sample_set, config)
    out_dir = ensure_writable_dir(config.out_dir, option="--out-dir")  # `deploy export`; callers check their own
    started = time.perf_counter()
    say(f"loading {spec.name} ({config.weights or spec.default_weights} weights)")
    loaded = load_model(spec, config.weights, config.custom)
    return _export(loaded, config, out_dir, say, started)


def export_module(
    module: nn.Module, config: ExportConfig, *, color: str = "RGB", progress: Progress | None = None
) -> ExportResult:
    """Export your own `nn.Module` under `config.model` (a new name): checked against the module like a zoo model;
    later commands judge against the FP32 ONNX written here, since nothing can rebuild the module from files."""
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    loaded = own_model(module, config.model, config.custom, color=color)
    if config.weights is not None:
        raise BadInput("weights apply to registered architectures", hint="load your weights into the module first")
    _check_samples(loaded.spec.sample_set, config)
    out_dir = ensure_writable_dir(config.out_dir, option="out_dir")
    return _export(loaded, config, out_dir, say, started)


def _export(loaded: LoadedModel, config: ExportConfig, out_dir: Path, say: Progress, started: float) -> ExportResult:
    spec = loaded.spec
    say(f"exporting with torch.export (opset {config.opset}, {_batch_text(config)})")
    raw = _torch_export(loaded, config)

    say(f"simplifying with {config.simplifier}")
    simplified, simplification = simplify(raw, config.simplifier)
    _check(simplified, "simplified graph")

    stem = config.name or spec.name
    onnx_path, json_path = out_dir / f"{stem}.onnx", out_dir / f"{stem}.json"
    samples = samples_for(spec.sample_set, config.parity_samples)
    feeds = list(_parity_feeds(loaded, config, [sample.image for sample in samples]))
    input_meta = (TensorMeta(spec.input_name, _input_shape(config, loaded.input_shape), "float32"),)

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
            _check_labels_fit(loaded, outputs[0])
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
            weights=_weights_info(loaded, onnx_path, onnx_tmp),
            inputs=(TensorInfo(spec.input_name, input_meta[0].shape),),
            outputs=outputs,
            batch=config.batch_range,
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
            head=HeadInfo(str(spec.head), loaded.num_classes) if loaded.head_replaced and loaded.num_classes else None,
            export_options=config.custom.given_options,
        )
        if parity is not None and not parity:
            raise ParityError(
                f"{spec.name}: ONNX Runtime output differs from eager PyTorch ({parity.summary()})",
                hint="nothing was written; loosen with --atol/--rtol, or keep the file for inspection with --no-verify",
            )
        staging.path_for(json_path).write_text(sidecar.to_json(), encoding="utf-8")
        staging.commit()

    say(Step(f"wrote {onnx_path} and {json_path}", path=onnx_path))
    return ExportResult(onnx_path, sidecar_path(onnx_path), sidecar, simplification, parity, simplification_parity)


def _check_labels_fit(loaded: LoadedModel, scores: TensorInfo) -> None:
    """Labels name the class scores one by one: a list of another length would name them wrongly everywhere."""
    labels = loaded.source.labels
    width = scores.shape[-1] if len(scores.shape) == 2 else None
    if labels is not None and isinstance(width, int) and len(labels) != width:
        raise BadInput(
            f"{len(labels)} labels ({loaded.source.labels_source or 'labels='}) for the {width} class scores "
            f"{loaded.spec.name} outputs",
            hint=f"give {width} labels, one per output in order",
        )


def _weights_info(loaded: LoadedModel, onnx_path: Path, written: Path) -> WeightsInfo:
    """The sidecar's weights block; a module's names the FP32 ONNX written here as its reference, by path and hash."""
    weights = WeightsInfo.from_dict(loaded.source.to_dict())
    if loaded.source.kind != MODULE_KIND:
        return weights
    reference = {"path": str(onnx_path.resolve()), "sha256": sha256_file(written)}
    return dataclasses.replace(weights, detail=weights.detail | reference)


def _validate(config: ExportConfig) -> None:
    """Every option checked before the model is loaded, each refused unless it takes effect."""
    if not MIN_OPSET <= config.opset <= MAX_OPSET:
        raise BadInput(
            f"--opset {config.opset} is not supported",
            hint=f"choose an opset from {MIN_OPSET} to {MAX_OPSET}",
        )
    # trtexec refuses shapes for a static model ("Static model does not take explicit shapes since the shape of
    # inference tensors will be determined by the model itself"), and a user of both tools would read
    # `--static --max-batch 8` either as a static batch of 8 or as a range: refused, naming the two spellings.
    if config.static and config.max_batch is not None:
        raise BadInput(
            f"--max-batch {config.max_batch} sets a dynamic batch range, and --static fixes the batch",
            hint=f"for a fixed batch of {config.max_batch} pass --static --batch {config.max_batch}; for batches "
            f"1 to {config.max_batch} drop --static",
        )
    if not config.static and config.static_batch is not None:
        raise BadInput(
            f"--batch {config.static_batch} is the batch of a --static export, and this export is dynamic",
            hint=f"add --static for a fixed batch of {config.static_batch}, or pass --max-batch "
            f"{config.static_batch} for batches 1 to {config.static_batch}",
        )
    if config.max_batch is not None:
        check_int("--max-batch", config.max_batch, low=1, high=MAX_BATCH, example=DEFAULT_MAX_BATCH)
    if config.static_batch is not None:
        check_int("--batch", config.static_batch, low=1, high=MAX_BATCH, example=8)
    check_int("--samples", config.parity_samples, low=1, example=8)
    if config.name is not None and MODEL_NAME.fullmatch(config.name) is None:
        raise BadInput(
            f"name {config.name!r} is not a plain model name",
            hint="pass ASCII letters, digits, '_' or '-' (it names OUT_DIR/NAME.onnx)",
        )
    if config.simplifier not in SIMPLIFIERS:
        raise BadInput(f"--simplifier {config.simplifier!r} is unknown", hint=f"choose one of {', '.join(SIMPLIFIERS)}")


def _check_samples(sample_set: SampleSet, config: ExportConfig) -> None:
    """--samples beyond the sample images there are would check fewer than the output says: refused."""
    available = sample_count(sample_set)
    if config.parity_samples > available:
        raise BadInput(
            f"--samples {config.parity_samples} is more than the {available} sample images ({sample_set}) there are",
            hint=f"pass --samples {min(8, available)} (at most {available})",
        )


def _batch_text(config: ExportConfig) -> str:
    batch = config.batch_range
    return f"dynamic batch 1..{batch.max}" if batch.dynamic else f"static batch {batch.max}"


def _input_shape(config: ExportConfig, chw: tuple[int, int, int]) -> tuple[int | str, ...]:
    batch = config.batch_range
    return (BATCH_DIM if batch.dynamic else batch.max, *chw)


def _torch_export(loaded: LoadedModel, config: ExportConfig) -> onnx.ModelProto:
    spec = loaded.spec
    # An example batch of 2: torch.export specialises a dimension whose example value is 1.
    batch_range = config.batch_range
    example_batch = batch_range.max if not batch_range.dynamic else min(2, batch_range.max)
    example = torch.randn(example_batch, *loaded.input_shape)
    dynamic_shapes = None
    if not config.static:
        batch = torch.export.Dim(BATCH_DIM, min=1, max=max(batch_range.max, 2))
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
        size = config.batch_range.max
        padded = np.concatenate([images] * (-(-size // len(images)))) if len(images) < size else images
        usable = len(padded) - len(padded) % size
        for start in range(0, usable, size):
            yield {name: padded[start : start + size]}
        return
    yield {name: images[:1]}
    step = min(8, config.batch_range.max)
    for start in range(1, len(images), step):
        yield {name: images[start : start + step]}
