"""`deploy import FILE`: an ONNX image classifier made by another tool, checked and given a sidecar, so build,
verify, bench, infer and triton treat it like an export of the zoo.

What deploy cannot read from the file (the preprocessing, the class names) comes from the options; what it can read
(input name, channels, a static input size and batch, the number of classes, the opset) is taken from the graph and
checked against them. Everything is checked, and the model is run once on ONNX Runtime, before anything is written.
The model has no PyTorch module: its reference is this FP32 ONNX on ONNX Runtime (deploy.harness.reference).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from deploy import __version__
from deploy.customization import Customization
from deploy.errors import ArtifactError, BadInput, first_line
from deploy.exporter import BATCH_DIM, DEFAULT_MAX_BATCH
from deploy.files import Staging, ensure_writable_dir, sha256_file
from deploy.harness.checks import MAX_BATCH, check_int
from deploy.imported import IMPORTED_FAMILY, IMPORTED_KIND, MODEL_NAME
from deploy.preprocessing import Preprocessing, preprocess_batch
from deploy.samples import SampleSet, samples_for
from deploy.sidecar import (
    BatchRange,
    Sidecar,
    TensorInfo,
    WeightsInfo,
    load_sidecar,
    onnxruntime_version,
    package_versions,
    sidecar_path,
)

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
Color = Literal["RGB", "L"]
# torchvision's ImageNet evaluation preprocessing: what RGB classifiers from other tools most often expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_RESIZE_RATIO = 256 / 224
CHECK_IMAGES = 4  # demo images the model is run on once before it is written
_FLOAT = onnx.TensorProto.FLOAT


@dataclass(frozen=True)
class ImportConfig:
    """`name` (the file stem under `out_dir`, and the model name later commands take) defaults to the source's stem;
    `custom` carries --labels and the preprocessing options; `max_batch` bounds a dynamic batch dimension."""

    source: Path
    name: str | None = None
    out_dir: Path = Path("export")
    custom: Customization = field(default_factory=Customization)
    max_batch: int | None = None  # None: DEFAULT_MAX_BATCH for a dynamic batch; refused for a static one

    def __post_init__(self) -> None:
        if self.name is not None:
            _check_name(self.name, self.source, given=True)
        if self.max_batch is not None:
            check_int("--max-batch", self.max_batch, low=1, high=MAX_BATCH, example=DEFAULT_MAX_BATCH)

    @property
    def stem(self) -> str:
        return self.name if self.name is not None else self.source.stem


@dataclass(frozen=True)
class ImportResult:
    onnx_path: Path
    sidecar_path: Path
    sidecar: Sidecar
    assumptions: tuple[str, ...]  # defaults taken for what was not given (ImageNet's normalisation, ...)
    checked_images: int  # demo images the model ran on, with finite scores


@dataclass(frozen=True)
class _Graph:
    """The facts about the file's graph that the sidecar records."""

    input: str
    output: str
    channels: int
    height: int | None  # None: dynamic
    width: int | None
    batch: int | str  # a static batch, or the dynamic dimension's name
    output_batch: int | str
    classes: int | None  # None: dynamic, read from the check run
    opset: int
    producer: str
    producer_version: str
    num_params: int


def import_onnx(config: ImportConfig, *, progress: Progress | None = None) -> ImportResult:
    """Check `config.source` and write `out_dir/NAME.onnx` (a byte copy) and its sidecar, or nothing."""
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    source, stem = config.source, config.stem
    if not source.is_file():
        raise BadInput(f"ONNX file {source} does not exist", hint="pass the path of your .onnx file")
    if config.name is None:
        _check_name(stem, source, given=False)
    _check_not_zoo(stem, source)
    graph = _read_graph(source)
    say(f"{source}: input {graph.input} {_shape_text(graph)}, output {graph.output}, opset {graph.opset}")
    batch = _batch_range(graph, config, source)
    prep, assumptions = _preprocessing(graph, config.custom, source)
    classes = graph.classes
    if classes is not None:
        _check_classes(classes, config.custom, source)

    say(f"running it once on ONNX Runtime on {CHECK_IMAGES} demo images")
    classes, checked = _check_run(source, graph, prep, batch)
    _check_classes(classes, config.custom, source)
    if config.custom.labels is None:
        assumptions += (f"no --labels: its {classes} classes are named by index",)

    out_dir = ensure_writable_dir(config.out_dir, option="--out-dir")
    onnx_path, json_path = out_dir / f"{stem}.onnx", out_dir / f"{stem}.json"
    _check_destination(onnx_path, source)
    with Staging() as staging:
        copy = staging.path_for(onnx_path)
        shutil.copyfile(source, copy)
        digest = sha256_file(copy)
        sidecar = Sidecar(
            model=stem,
            family=IMPORTED_FAMILY,
            weights=WeightsInfo(
                IMPORTED_KIND,
                str(source.resolve()),
                {
                    "path": str(onnx_path.resolve()),
                    "sha256": digest,
                    "producer": graph.producer,
                    "producer_version": graph.producer_version,
                },
            ),
            inputs=(TensorInfo(graph.input, (graph.batch, graph.channels, prep.crop_size, prep.crop_size)),),
            outputs=(TensorInfo(graph.output, (graph.output_batch, classes)),),
            batch=batch,
            preprocessing=prep,
            labels=config.custom.labels,
            labels_source=config.custom.labels_source,
            opset=graph.opset,
            artifact=onnx_path.name,
            sha256=digest,
            size_bytes=copy.stat().st_size,
            num_params=graph.num_params,
            simplifier={"tool": "none"},
            versions={
                "deploy": __version__,
                **package_versions("onnx", "onnxruntime-gpu", "onnxruntime"),
                "onnxruntime_runtime": onnxruntime_version(),
            },
            export_seconds=round(time.perf_counter() - started, 3),
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            parity=None,  # it is the reference: there is nothing to compare it with
            extra={"import": {"assumptions": list(assumptions), "checked_images": checked}},
        )
        staging.path_for(json_path).write_text(sidecar.to_json(), encoding="utf-8")
        staging.commit()
    say(f"wrote {onnx_path} and {json_path}")
    return ImportResult(onnx_path, sidecar_path(onnx_path), sidecar, assumptions, checked)


def _check_name(name: str, source: Path, *, given: bool) -> None:
    """A plain file stem: no dots, so `NAME.fp16.onnx` in engines/ is never read as another model's artifact."""
    if MODEL_NAME.fullmatch(name) is None:
        plain = re.sub(r"[^A-Za-z0-9_-]", "_", name).strip("_-")[:100] or "my_model"
        what = f"--name {name!r} for {source}" if given else f"{source} would be imported as {name!r} (its stem), which"
        raise BadInput(
            f"{what} is not a plain model name (ASCII letters, digits, '_' and '-', at most 100, starting with a "
            "letter or digit)",
            hint=f"pass --name {plain}",
        )


def _check_not_zoo(name: str, source: Path) -> None:
    """A zoo name would make later commands rebuild that architecture as the reference, or overwrite its export."""
    from deploy.zoo import list_models

    if name.lower() in list_models():
        raise BadInput(
            f"{source} would be imported as {name!r}, the name of a zoo architecture (`deploy list`)",
            hint=f"pass --name {name.lower()}_imported (any name outside the zoo)",
        )


def _read_graph(source: Path) -> _Graph:
    def refuse(what: str, hint: str) -> ArtifactError:
        return ArtifactError(f"{source} {what}", hint=hint)

    not_onnx = "pass the .onnx file your training tool exported (torch.onnx.export, tf2onnx, keras2onnx, ...)"
    try:
        model = onnx.load(str(source), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and others: whatever it is, it is not an ONNX model
        raise refuse(f"is not an ONNX model ({first_line(exc)})", not_onnx) from exc
    if any(onnx.external_data_helper.uses_external_data(t) for t in model.graph.initializer):
        raise refuse(
            "keeps its weights in external data files, which a copy of the .onnx file would leave behind",
            "save it as one file: onnx.save_model(onnx.load(FILE), FILE, save_as_external_data=False)",
        )
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise refuse(f"is not a valid ONNX model: onnx.checker says {first_line(exc)}", not_onnx) from exc
    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    fix_graph = "deploy imports image classifiers: one float32 input [N, C, H, W] (C 1 or 3), one output [N, classes]"
    if len(inputs) != 1:
        names = ", ".join(value.name for value in inputs) or "none"
        raise refuse(f"has {len(inputs)} inputs ({names}); an image classifier has one", fix_graph)
    if len(graph.output) != 1:
        names = ", ".join(value.name for value in graph.output)
        raise refuse(f"has {len(graph.output)} outputs ({names}); an image classifier has one", fix_graph)
    value, output = inputs[0], graph.output[0]
    if not output.type.tensor_type.HasField("shape"):  # some tools leave output shapes to shape inference
        with contextlib.suppress(Exception):  # a graph shape inference fails on is judged by its declared shape
            output = onnx.shape_inference.infer_shapes(model).graph.output[0]
    dims = _dims(value)
    out_dims = _dims(output)
    if value.type.tensor_type.elem_type != _FLOAT or len(dims) != 4:
        raise refuse(f"input {value.name!r} is {_type_text(value)}, not a float32 [N, C, H, W] image batch", fix_graph)
    if dims[1] not in (1, 3):
        raise refuse(
            f"input {value.name!r} has {dims[1]} channels ({_type_text(value)}); deploy feeds 1 or 3", fix_graph
        )
    if output.type.tensor_type.elem_type != _FLOAT or len(out_dims) != 2:
        raise refuse(
            f"output {output.name!r} is {_type_text(output)}, not float32 class scores [N, classes] (a feature map "
            "or a detector's output?)",
            fix_graph,
        )
    if isinstance(dims[0], int) and isinstance(out_dims[0], int) and dims[0] != out_dims[0]:
        raise refuse(
            f"maps a batch of {dims[0]} to {out_dims[0]} rows of scores; a classifier gives one per image", fix_graph
        )
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise refuse("imports no default-domain (ai.onnx) opset", not_onnx)
    return _Graph(
        input=value.name,
        output=output.name,
        channels=int(dims[1]),  # checked above: 1 or 3
        height=dims[2] if isinstance(dims[2], int) else None,
        width=dims[3] if isinstance(dims[3], int) else None,
        batch=dims[0] if isinstance(dims[0], int) else (dims[0] or BATCH_DIM),
        output_batch=out_dims[0] if isinstance(out_dims[0], int) else (out_dims[0] or BATCH_DIM),
        classes=out_dims[1] if isinstance(out_dims[1], int) else None,
        opset=int(opset),
        producer=model.producer_name,
        producer_version=model.producer_version,
        num_params=sum(math.prod(tensor.dims) for tensor in graph.initializer),
    )


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    """Each dimension: its size, or its symbolic name ("" when it has neither)."""
    shape = value.type.tensor_type.shape
    # A dim_value of 0 or less (written by some older exporters for "unknown") is a dynamic dimension.
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else d.dim_param for d in shape.dim]


def _type_text(value: onnx.ValueInfoProto) -> str:
    if not value.type.HasField("tensor_type"):
        return f"a non-tensor value ({value.type.WhichOneof('value') or 'untyped'})"
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
    except (KeyError, ValueError):
        dtype = f"element type {value.type.tensor_type.elem_type}"
    dims = ", ".join(str(d) if d != "" else "?" for d in _dims(value))
    return f"{dtype} [{dims}]"


def _shape_text(graph: _Graph) -> str:
    side = "dynamic" if graph.height is None or graph.width is None else f"{graph.height}x{graph.width}"
    return f"[{graph.batch}, {graph.channels}, {side}]"


def _batch_range(graph: _Graph, config: ImportConfig, source: Path) -> BatchRange:
    if isinstance(graph.batch, int):
        if config.max_batch is not None:
            raise BadInput(
                f"--max-batch {config.max_batch} bounds a dynamic batch, and {source} has a static batch of "
                f"{graph.batch}",
                hint="drop --max-batch (or save the model with a dynamic batch dimension and import it again)",
            )
        check_int("the static batch of the model", graph.batch, low=1, high=MAX_BATCH, example=1)
        return BatchRange(dynamic=False, min=graph.batch, max=graph.batch)
    return BatchRange(dynamic=True, min=1, max=config.max_batch or DEFAULT_MAX_BATCH)


def _preprocessing(graph: _Graph, custom: Customization, source: Path) -> tuple[Preprocessing, tuple[str, ...]]:
    """The preprocessing from the options, checked against the graph, and the defaults that filled the gaps.

    RGB models get torchvision's ImageNet evaluation defaults (mean/std, resize 256/224 of the crop), the convention
    of most classifiers exported from other tools, each recorded as an assumption the user sees. Gray models have
    no such convention: --mean and --std are required, and the resize defaults to the crop (nothing cut off)."""
    crop = _crop_size(graph, custom, source)
    color: Color = "RGB" if graph.channels == 3 else "L"
    assumptions: list[str] = []
    mean, std = custom.mean, custom.std
    if color == "L" and (mean is None or std is None):
        missing = " and ".join(o for o, v in (("--mean", mean), ("--std", std)) if v is None)
        raise BadInput(
            f"{source} takes gray images (1 channel) and {missing} {'was' if ' and ' not in missing else 'were'} not "
            "given: there is no common normalisation for gray models to assume",
            hint="pass the values it was trained with, e.g. --mean 0.5 --std 0.5 (or --mean 0 --std 1 for [0, 1])",
        )
    if mean is None:
        mean = IMAGENET_MEAN
        assumptions.append(f"--mean {_floats(IMAGENET_MEAN)} (ImageNet's; pass --mean if it was trained otherwise)")
    if std is None:
        std = IMAGENET_STD
        assumptions.append(f"--std {_floats(IMAGENET_STD)} (ImageNet's; pass --std if it was trained otherwise)")
    resize = custom.resize_size
    if resize is None:
        resize = round(crop * IMAGENET_RESIZE_RATIO) if color == "RGB" else crop
        why = "ImageNet's 256/224 ratio" if color == "RGB" else "the whole image, nothing cropped"
        assumptions.append(f"--resize-size {resize} ({why}; pass --resize-size to change it)")
    try:
        prep = Preprocessing(
            resize_size=resize,
            crop_size=crop,
            mean=mean,
            std=std,
            interpolation=custom.interpolation or "bilinear",
            color=color,
        )
    except ValueError as exc:
        raise BadInput(
            f"the preprocessing options do not fit {source} ({color}, {graph.channels} channel(s)): {exc}",
            hint=f"give {graph.channels} value(s) to --mean and --std, and a --resize-size of at least {crop}",
        ) from exc
    return prep, tuple(assumptions)


def _crop_size(graph: _Graph, custom: Customization, source: Path) -> int:
    """The square side the network sees: --input-size, or the graph's static H = W; the two must agree."""
    static = {d for d in (graph.height, graph.width) if d is not None}
    if graph.height is not None and graph.width is not None and graph.height != graph.width:
        raise ArtifactError(
            f"{source} takes {graph.height}x{graph.width} images; deploy's preprocessing makes square crops",
            hint="save the model with a square input (H = W) and import it again",
        )
    if custom.input_size is not None:
        if static and custom.input_size not in static:
            raise BadInput(
                f"--input-size {custom.input_size} does not match {source}, which takes "
                f"{graph.height or '?'}x{graph.width or '?'} images",
                hint=f"pass --input-size {next(iter(static))} (or drop it: a static size is read from the file)",
            )
        return custom.input_size
    if graph.height is None or graph.width is None:
        raise BadInput(
            f"{source} takes images of any size (dynamic H/W): deploy needs the size it was trained at",
            hint=f"pass --input-size SIZE, e.g. deploy import {source} --input-size 224",
        )
    return graph.height


def _check_classes(classes: int, custom: Customization, source: Path) -> None:
    if custom.labels is not None and len(custom.labels) != classes:
        given = f"--labels {custom.labels_source}" if custom.labels_source else "--labels"
        raise BadInput(
            f"{given} names {len(custom.labels)} classes, and {source} scores {classes}",
            hint=f"give one label per class: {classes} lines in the --labels file",
        )
    if custom.num_classes is not None and custom.num_classes != classes:
        raise BadInput(
            f"--num-classes {custom.num_classes} does not match {source}, which scores {classes} classes",
            hint="drop --num-classes: the import reads the number of classes from the file",
        )


def _check_run(source: Path, graph: _Graph, prep: Preprocessing, batch: BatchRange) -> tuple[int, int]:
    """Run the model once on demo images (batches of 1 and more where the batch is dynamic): it must load, take the
    preprocessed tensors and give finite [N, classes] scores. Returns (classes, images run)."""
    from deploy.targets.onnxruntime.runner import OrtRunner

    demo: SampleSet = "digits" if prep.color == "L" else "photos"
    images = preprocess_batch([sample.image for sample in samples_for(demo, CHECK_IMAGES)], prep)
    if batch.dynamic:
        feeds = [images[:1], images[1 : 1 + min(batch.max, len(images) - 1)]]
    else:
        feeds = [np.concatenate([images] * -(-batch.max // len(images)))[: batch.max]]
    try:
        with OrtRunner(source) as runner:
            outputs = [runner.infer({graph.input: feed})[graph.output] for feed in feeds]
    except ArtifactError as exc:
        raise ArtifactError(
            f"{source} does not run on ONNX Runtime's CPU provider: {exc.message}",
            hint="deploy's reference for an imported model is its FP32 ONNX on ONNX Runtime's CPU provider: save "
            "it with standard ONNX operators and import it again",
        ) from exc
    classes = graph.classes
    for feed, scores in zip(feeds, outputs, strict=True):
        expected = f"[{len(feed)}, {classes or 'classes'}]"
        if scores.ndim != 2 or scores.shape[0] != len(feed) or scores.shape[1] != (classes or scores.shape[1]):
            raise ArtifactError(
                f"{source} gave scores of shape {list(scores.shape)} for {len(feed)} {prep.crop_size}x"
                f"{prep.crop_size} image(s), not {expected}",
                hint="import an image classifier (one row of class scores per image)",
            )
        if not np.isfinite(scores).all():
            raise ArtifactError(
                f"{source} gave non-finite scores (nan or inf) on the demo images",
                hint="check the model and its --mean/--std; it must give finite scores to be verified",
            )
        classes = int(scores.shape[1])
    assert classes is not None  # feeds is never empty
    return classes, sum(len(feed) for feed in feeds)


def _check_destination(onnx_path: Path, source: Path) -> None:
    """Overwrite an earlier import of the same name (like a re-export), never a zoo export or a foreign file."""
    if not onnx_path.exists() or onnx_path.resolve() == source.resolve():
        return
    if onnx_path.is_file() and sha256_file(onnx_path) == sha256_file(source):
        return  # the same bytes: writing them again changes nothing
    try:
        previous: Sidecar | None = load_sidecar(onnx_path, check_hash=False)
    except ArtifactError:
        previous = None
    if previous is None or previous.family != IMPORTED_FAMILY:
        owner = "a file without a deploy sidecar" if previous is None else f"an export of {previous.model}"
        raise BadInput(
            f"{onnx_path} exists and is {owner}; importing would overwrite it",
            hint="pass --name with another name, or --out-dir another folder (it stays as it is)",
        )


def _floats(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values)


__all__ = ["ImportConfig", "ImportResult", "import_onnx"]
