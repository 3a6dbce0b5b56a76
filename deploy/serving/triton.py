"""`deploy triton`: a Triton Inference Server model repository from artifacts and their sidecars.

We write what Triton reads — `<name>/config.pbtxt`, `<name>/<version>/model.{onnx,plan,xml+bin}` (file names and the
platform or backend come from the artifact's target), `labels.txt` — and never a server. Every field comes from the
sidecar, so the config and the artifact cannot disagree.

Two additions for servers and clients that have less: `backend="python"` serves an ONNX artifact through Triton's
Python backend with ONNX Runtime on the CPU (model.py beside model.onnx; for a tritonserver without the ONNX Runtime
backend, such as PyPI's nvidia-pytriton build), and `ensemble=True` adds `<name>_preprocess` (encoded image bytes →
the input tensor, deploy's preprocessing from the sidecar), `<name>_topk` (scores → labels, probabilities, indices)
and `<name>_ensemble` chaining the three, so a client sends JPEG/PNG bytes and receives the top-k labels. The
model.py files are deploy/serving/python_models/*.py, copied byte for byte; they import nothing from deploy.

A call is all or nothing: every artifact is checked and every new file is staged before the first one is moved
into the repository, and a failure while moving puts back what was moved. Triton never sees half a model: a new
model folder appears whole by one rename, a new version folder likewise, config.pbtxt and labels.txt by replace.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from deploy.errors import ArtifactError, BadInput, OutputNotWritable
from deploy.files import ensure_writable_dir, scratch_dir, sha256_file, sweep_stale
from deploy.sidecar import Sidecar, TensorInfo, companions, load_sidecar
from deploy.targets import Target, target_for

log = logging.getLogger(__name__)

Device = Literal["gpu", "cpu"]
# native: the artifact's own Triton platform or backend (onnxruntime_onnx, tensorrt_plan, openvino);
# python: Triton's Python backend running the ONNX through ONNX Runtime on the CPU.
Backend = Literal["native", "python"]
BACKENDS: tuple[Backend, ...] = ("native", "python")
# added: a new version folder; reconfigured: the artifact is the newest version already, config.pbtxt or labels.txt
# changed (other options); unchanged: the repository already held exactly this, nothing was written.
ModelStatus = Literal["added", "reconfigured", "unchanged"]
_TRITON_TYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16",
    "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "bool": "TYPE_BOOL",
    "bytes": "TYPE_STRING",  # the ensemble's encoded images and labels; never a sidecar's dtype
}
LABELS_FILE = "labels.txt"
CONFIG_FILE = "config.pbtxt"
# A model name is a folder name and a quoted string in config.pbtxt: a conservative subset of what Triton and every
# file system accept (Triton itself refuses empty names, '/' and '..').
_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
MAX_NAME_LENGTH = 128
_VERSION = re.compile(r"0|[1-9][0-9]*")  # Triton ignores version folders with leading zeros
PYTHON_MODEL_FILE = "model.py"
# The ensemble's tensors as clients see them.
IMAGE_INPUT = "IMAGE"
TOPK_OUTPUTS = (("LABELS", "bytes"), ("PROBABILITIES", "float32"), ("CLASS_INDICES", "int64"))
MAX_TOP_K = 1000


@dataclass(frozen=True)
class TritonConfig:
    artifacts: tuple[Path, ...]
    repo: Path = Path("model_repository")
    name: str | None = None
    instances: int = 1
    device: Device | None = None  # None: where the artifact's target runs (GPU for ONNX and plans, CPU for IR)
    max_queue_delay_us: int = 100
    labels: bool = True
    force: bool = False
    backend: Backend = "native"
    ensemble: bool = False  # add <name>_preprocess, <name>_topk and <name>_ensemble (image bytes in, top-k out)
    top_k: int = 5  # labels per image from the ensemble
    intra_op_threads: int = 0  # ONNX Runtime threads per instance of a Python-backend model; 0: one per core


@dataclass(frozen=True)
class TritonModel:
    name: str
    version: int  # the version added, or the newest one when the artifact was already there
    platform: str  # Triton's platform ("ensemble" too), or its backend where it has no platform (openvino, python)
    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...]
    config_path: Path
    model_path: Path
    labels_path: Path | None
    status: ModelStatus


@dataclass(frozen=True)
class TritonResult:
    repo: Path
    models: tuple[TritonModel, ...]


@dataclass(frozen=True)
class _Plan:
    """One model folder, checked and rendered: everything it needs, before the repository is touched."""

    name: str
    sources: tuple[Path, ...]  # the artifact, then its companions, in the order of `filenames`
    digests: tuple[str, ...]  # their sha256 as the sidecar records them
    filenames: tuple[str, ...]
    platform: str
    serving: str
    max_batch_size: int
    preferred: tuple[int, ...]
    config: str
    labels: str | None
    generated: tuple[tuple[str, bytes], ...] = ()  # version-folder files written from memory (model.py)

    @property
    def model_file(self) -> str:
        """The file that is the model: the artifact, else model.py, else (an ensemble) the version folder."""
        return self.filenames[0] if self.filenames else self.generated[0][0] if self.generated else ""


@dataclass(frozen=True)
class _Change:
    """What one plan does to the repository as it is now."""

    plan: _Plan
    folder: Path
    new_folder: bool
    version: int
    new_version: bool
    write_config: bool
    write_labels: bool

    @property
    def model(self) -> TritonModel:
        plan, folder = self.plan, self.folder
        status: ModelStatus = "added" if self.new_version else "unchanged"
        if not self.new_version and (self.write_config or self.write_labels):
            status = "reconfigured"
        return TritonModel(
            name=plan.name,
            version=self.version,
            platform=plan.platform,
            max_batch_size=plan.max_batch_size,
            preferred_batch_sizes=plan.preferred,
            config_path=folder / CONFIG_FILE,
            model_path=folder / str(self.version) / plan.model_file,
            labels_path=folder / LABELS_FILE if plan.labels is not None else None,
            status=status,
        )


def write_repository(config: TritonConfig) -> TritonResult:
    """Add each artifact as a model (or a new version of one) in `config.repo`; all of them, or none."""
    _validate(config)
    plans = [plan for path in config.artifacts for plan in _plans(path, config)]
    names = [plan.name for plan in plans]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BadInput(
            f"two models would share the Triton model name {duplicates[0]!r}",
            hint="add them in separate calls with --name, or rename the files",
        )
    created = not config.repo.exists()
    repo = ensure_writable_dir(config.repo, option="--repo")
    try:
        _check_repository(repo, config.force)
        changes = [_change(repo, plan) for plan in plans]
        _publish(repo, changes)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                repo.rmdir()  # only if still empty
        raise
    return TritonResult(repo, tuple(change.model for change in changes))


def _validate(config: TritonConfig) -> None:
    if not config.artifacts:
        raise BadInput(
            "no artifacts given", hint="pass export/MODEL.onnx, engines/MODEL.int8.onnx, a .plan or an OpenVINO .xml"
        )
    if config.name is not None and len(config.artifacts) > 1:
        raise BadInput("--name applies to one artifact, not several", hint="run deploy triton once per --name")
    if config.instances < 1:
        raise BadInput(f"--instances {config.instances} must be at least 1", hint="pass --instances 1")
    if config.max_queue_delay_us < 0:
        raise BadInput("--max-queue-delay-us must not be negative", hint="pass --max-queue-delay-us 100")
    if config.backend not in BACKENDS:
        raise BadInput(f"--backend {config.backend!r} is unknown", hint="pass --backend native or --backend python")
    if config.backend == "python" and config.device == "gpu":
        raise BadInput("the Python backend model runs ONNX Runtime on the CPU only", hint="drop --device gpu")
    if not 1 <= config.top_k <= MAX_TOP_K:
        raise BadInput(f"--top-k {config.top_k} must be between 1 and {MAX_TOP_K}", hint="pass --top-k 5")
    if config.intra_op_threads < 0:
        raise BadInput("--threads must not be negative", hint="pass --threads 0 (one per core)")


def _plans(path: Path, config: TritonConfig) -> list[_Plan]:
    """The artifact's model, then with --ensemble its preprocessing, top-k and ensemble models."""
    plan, sidecar = _plan(path, config)
    if not config.ensemble:
        return [plan]
    return [plan, *_ensemble_plans(plan, path, sidecar, config)]


def _plan(path: Path, config: TritonConfig) -> tuple[_Plan, Sidecar]:
    if not path.is_file():
        raise BadInput(f"artifact {path} does not exist", hint="export or build it first")
    target = target_for(path)
    python = config.backend == "python"
    if python and target.name != "onnxruntime":
        raise BadInput(
            f"{path} is a {target.name} artifact; the Python backend model runs ONNX files through ONNX Runtime",
            hint="pass the .onnx it was built from, or drop --backend python",
        )
    name = config.name if config.name is not None else _default_name(path) + ("_python" if python else "")
    _check_name(name, path, from_option=config.name is not None)
    sidecar = load_sidecar(path)  # typed and checked (plain companion names, batch range, tensors listed)
    sources = (path, *companions(path, sidecar))
    if len(sources) != len(target.triton.filenames):
        raise ArtifactError(
            f"the sidecar of {path} lists {len(sources) - 1} companion files; a {target.name} model needs "
            f"{len(target.triton.filenames) - 1}",
            hint=f"rebuild it with `deploy build MODEL --target {target.name}`",
        )
    _check_sidecar(path, sidecar, target, labels=config.labels)
    device = "cpu" if python else _device(target, path, config.device)
    serving = f"backend: {pbtxt_string('python')}" if python else _serving_line(target)
    max_batch = sidecar.batch.max if sidecar.batch.dynamic else 0
    preferred = preferred_batch_sizes(sidecar.batch.min, max_batch) if max_batch else ()
    labels = sidecar.labels if config.labels else None
    text = config_text(
        name=name,
        serving=serving,
        max_batch_size=max_batch,
        inputs=sidecar.inputs,
        outputs=sidecar.outputs,
        dynamic=sidecar.batch.dynamic,
        preferred=preferred,
        max_queue_delay_us=config.max_queue_delay_us,
        instances=config.instances,
        device=device,
        labels=labels is not None,
        parameters=(("intra_op_threads", str(config.intra_op_threads)),) if python else (),
    )
    listed = sidecar.target.companions if sidecar.target is not None else ()
    plan = _Plan(
        name=name,
        sources=sources,
        digests=(sidecar.sha256, *(c.sha256 for c in listed)),
        filenames=target.triton.filenames,
        platform="python" if python else target.triton.platform or target.triton.backend or target.name,
        serving=serving,
        max_batch_size=max_batch,
        preferred=preferred,
        config=text,
        labels=None if labels is None else "\n".join(labels) + "\n",
        generated=((PYTHON_MODEL_FILE, python_model("onnxruntime_cpu")),) if python else (),
    )
    return plan, sidecar


def python_model(kind: Literal["onnxruntime_cpu", "preprocess", "topk"]) -> bytes:
    """The model.py of one Python-backend model kind, as deploy ships it."""
    return resources.files("deploy.serving.python_models").joinpath(f"{kind}.py").read_bytes()


def _ensemble_plans(model: _Plan, path: Path, sidecar: Sidecar, config: TritonConfig) -> list[_Plan]:
    """Preprocessing, top-k and the ensemble around one classifier: image bytes in, top-k labels out."""
    if len(sidecar.inputs) != 1 or len(sidecar.outputs) != 1:
        raise BadInput(
            f"{path} has {len(sidecar.inputs)} inputs and {len(sidecar.outputs)} outputs; the ensemble serves "
            "classifiers (one image input, one score output)",
            hint="drop --ensemble",
        )
    if model.max_batch_size == 0:
        raise BadInput(
            f"{path} has a fixed batch size; the ensemble batches requests along a dynamic batch dimension",
            hint=f"re-export it without --static: `deploy export {sidecar.model}`",
        )
    (image,), (scores,) = sidecar.inputs, sidecar.outputs
    expected = (sidecar.preprocessing.channels, sidecar.preprocessing.crop_size, sidecar.preprocessing.crop_size)
    if tuple(image.shape[1:]) != expected:
        raise ArtifactError(
            f"{path} takes {image.shape[1:]} but its preprocessing makes {expected}",
            hint=f"re-export it with `deploy export {sidecar.model}`",
        )
    names = {kind: f"{model.name}_{kind}" for kind in ("preprocess", "topk", "ensemble")}
    for derived in names.values():
        _check_name(derived, path, from_option=config.name is not None)
    k = min(config.top_k, _classes(scores))
    image_bytes = TensorInfo(IMAGE_INPUT, ("batch", 1), "bytes")
    outputs = tuple(TensorInfo(n, ("batch", k), dtype) for n, dtype in TOPK_OUTPUTS)
    preprocess = _python_config(
        names["preprocess"],
        model,
        config,
        inputs=(image_bytes,),
        outputs=(image,),
        parameters=(("preprocessing", json.dumps(sidecar.preprocessing.to_dict(), sort_keys=True)),),
    )
    topk_parameters = (("top_k", str(k)),)
    topk = _python_config(names["topk"], model, config, inputs=(scores,), outputs=outputs, parameters=topk_parameters)
    steps = (
        (names["preprocess"], {IMAGE_INPUT: IMAGE_INPUT}, {image.name: "preprocessed"}),
        (model.name, {image.name: "preprocessed"}, {scores.name: "scores"}),
        (names["topk"], {scores.name: "scores"}, {n: n for n, _ in TOPK_OUTPUTS}),
    )
    ensemble = ensemble_config_text(
        name=names["ensemble"],
        max_batch_size=model.max_batch_size,
        inputs=(image_bytes,),
        outputs=outputs,
        steps=steps,
    )
    return [
        _generated_plan(names["preprocess"], model, preprocess, python_model("preprocess")),
        # "class N" from top-k where --no-labels left the labels out
        _generated_plan(names["topk"], model, topk, python_model("topk"), labels=model.labels),
        _generated_plan(names["ensemble"], model, ensemble, None),
    ]


def _python_config(
    name: str,
    model: _Plan,
    config: TritonConfig,
    *,
    inputs: tuple[TensorInfo, ...],
    outputs: tuple[TensorInfo, ...],
    parameters: tuple[tuple[str, str], ...],
) -> str:
    """A Python-backend step of the ensemble: CPU instances, batching like the model it feeds or reads."""
    return config_text(
        name=name,
        serving=f"backend: {pbtxt_string('python')}",
        max_batch_size=model.max_batch_size,
        inputs=inputs,
        outputs=outputs,
        dynamic=True,
        preferred=model.preferred,
        max_queue_delay_us=config.max_queue_delay_us,
        instances=config.instances,
        device="cpu",
        labels=False,
        parameters=parameters,
    )


def _generated_plan(name: str, model: _Plan, config: str, code: bytes | None, *, labels: str | None = None) -> _Plan:
    """A model folder with no artifact: a Python-backend model (config and model.py), or with no code the ensemble
    (config and an empty version folder, which Triton requires)."""
    platform = "python" if code is not None else "ensemble"
    serving = f"backend: {pbtxt_string(platform)}" if code is not None else f"platform: {pbtxt_string(platform)}"
    return _Plan(
        name=name,
        sources=(),
        digests=(),
        filenames=(),
        platform=platform,
        serving=serving,
        max_batch_size=model.max_batch_size,
        preferred=model.preferred if code is not None else (),
        config=config,
        labels=labels,
        generated=((PYTHON_MODEL_FILE, code),) if code is not None else (),
    )


def _classes(scores: TensorInfo) -> int:
    width = 1
    for dim in scores.shape[1:]:
        width *= dim if isinstance(dim, int) and dim > 0 else 1
    return width


def _default_name(path: Path) -> str:
    return path.name.removesuffix(path.suffix).replace(".", "_")


def _name_problem(name: str) -> str | None:
    """Why `name` cannot be a Triton model name here, or None when it can."""
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"it is longer than {MAX_NAME_LENGTH} characters"
    if name[0] in ".-":
        return f"it starts with {name[0]!r}"
    if ".." in name:
        return "it contains '..'"
    if _MODEL_NAME.fullmatch(name) is None:
        bad = next(c for c in name if _MODEL_NAME.fullmatch(f"_{c}") is None)
        return f"it contains {bad!r}"
    return None


def _check_name(name: str, artifact: Path, *, from_option: bool) -> None:
    problem = _name_problem(name)
    if problem is None:
        return
    allowed = "ASCII letters, digits, '_', '.' and '-', starting with a letter, digit or '_'"
    if from_option:
        raise BadInput(
            f"--name {name!r} for {artifact} is not a usable Triton model name: {problem}",
            hint=f"pass --name with {allowed}",
        )
    raise BadInput(
        f"{artifact} would become Triton model {name!r} (from its file name), which is not usable: {problem}",
        hint=f"pass --name NAME (one artifact per call) or rename the file, using {allowed}",
    )


def _check_sidecar(path: Path, sidecar: Sidecar, target: Target, *, labels: bool) -> None:
    """What config.pbtxt and labels.txt need beyond the sidecar's own checks (load_sidecar has typed every field):
    tensor names that are text protobuf can hold, and labels of one line each."""

    def refuse(what: str) -> ArtifactError:
        return ArtifactError(
            f"the sidecar of {path} is not usable for Triton: {what}",
            hint=f"rebuild it with `deploy export MODEL` or `deploy build MODEL --target {target.name}`",
        )

    for section, tensors in (("input", sidecar.inputs), ("output", sidecar.outputs)):
        for tensor in tensors:
            if not tensor.name or not _utf8(tensor.name):
                raise refuse(f"{section} name {tensor.name!r} is not a non-empty text")
    for label in (sidecar.labels or ()) if labels else ():
        if "\n" in label or "\r" in label or not _utf8(label):
            raise refuse(f"label {label!r} is not one line of text (labels.txt holds one per line)")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which JSON can spell
        return False
    return True


def _check_repository(repo: Path, force: bool) -> None:
    """A repository holds model folders (each with a config.pbtxt) only; anything else means a wrong folder."""
    foreign = sorted(
        entry.name
        for entry in repo.iterdir()
        if not entry.name.startswith(".") and not (entry.is_dir() and (entry / CONFIG_FILE).is_file())
    )
    if foreign and not force:
        raise BadInput(
            f"{repo} holds content that is not a Triton model ({', '.join(foreign[:3])}"
            f"{', …' if len(foreign) > 3 else ''})",
            hint="choose an empty or existing model repository with --repo, or pass --force to write there anyway",
        )


def _change(repo: Path, plan: _Plan) -> _Change:
    """Compare a plan with the repository (read only): a new folder, a new version, or the newest one again."""
    folder = repo / plan.name
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise BadInput(
            f"{folder} exists and is not a model folder",
            hint="pass --name to add this artifact as a separate model, or remove that entry",
        )
    if not folder.exists():
        return _Change(plan, folder, new_folder=True, version=1, new_version=True, write_config=True, write_labels=True)
    config = _read(folder / CONFIG_FILE)
    if config is not None and plan.serving.encode() not in config:
        raise BadInput(
            f"model {plan.name!r} in {repo} is served by another platform than {plan.platform}",
            hint="pass --name to add this artifact as a separate model",
        )
    entries = [entry for entry in folder.iterdir() if _VERSION.fullmatch(entry.name)]
    newest = max((int(e.name) for e in entries if e.is_dir() and not e.is_symlink()), default=None)
    same = newest is not None and _holds(folder / str(newest), plan)
    version = newest if same and newest is not None else max((int(e.name) for e in entries), default=0) + 1
    return _Change(
        plan,
        folder,
        new_folder=False,
        version=version,
        new_version=not same,
        write_config=config != plan.config.encode(),
        write_labels=plan.labels is not None and _read(folder / LABELS_FILE) != plan.labels.encode(),
    )


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _holds(version_folder: Path, plan: _Plan) -> bool:
    """Whether a version folder already holds exactly this artifact and these generated files (a re-run, not a new
    build): then no version is added, however often `deploy triton` runs."""
    for source, filename, digest in zip(plan.sources, plan.filenames, plan.digests, strict=True):
        held = version_folder / filename
        if not held.is_file() or held.stat().st_size != source.stat().st_size or sha256_file(held) != digest:
            return False
    return all(_read(version_folder / filename) == data for filename, data in plan.generated)


def _publish(repo: Path, changes: list[_Change]) -> None:
    """Stage every new file, then move them all into place; on a failure, move back what was moved."""
    undo: list[Callable[[], None]] = []
    not_undone = 0
    try:
        assembly = _assembly_parent(repo)
        with contextlib.ExitStack() as scratch:
            moves = [step for change in changes for step in _stage(scratch, assembly, change)]
            try:
                for move in moves:
                    undo.append(move())
            except BaseException:
                for step in reversed(undo):
                    try:
                        step()
                    except OSError as exc:  # go on: leave the rest as it was, and say what is left
                        not_undone += 1
                        log.warning("could not take back a change in %s: %s", repo, exc)
                raise
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        state = "it is left as it was" if not not_undone else f"{not_undone} change(s) could not be taken back"
        raise OutputNotWritable(
            f"could not write the model repository {repo}: {exc.strerror or exc}{where}; {state}",
            hint="check the free space and permissions of the folder given with --repo, then run deploy triton again",
        ) from exc


Move = Callable[[], Callable[[], None]]  # publishes one staged entry, returns how to take it back


def _stage(scratch: contextlib.ExitStack, assembly: Path, change: _Change) -> list[Move]:
    """Write what `change` adds into a hidden work folder; return the renames that publish it.

    A new model folder is assembled beside the repository when that is the same file system (Triton lists every
    subfolder of the repository as a model, hidden ones too, and reports a half-made one as a failed load); a new
    version folder inside the model folder, where Triton skips names that are not version numbers."""
    plan = change.plan
    if change.new_folder:
        work = scratch.enter_context(scratch_dir(assembly, "triton-model"))
        model = work / plan.name
        model.mkdir()
        _write_model_files(model, change)
        return [_rename(model, change.folder)]
    sweep_stale(change.folder)  # what a killed run left here: outside the repository's own sweep
    if not (change.new_version or change.write_config or change.write_labels):
        return []  # not even a work folder: Triton (poll mode) reloads a model whose folder changes
    work = scratch.enter_context(scratch_dir(change.folder, "triton-version"))
    moves: list[Move] = []
    if change.new_version:
        version = work / str(change.version)
        version.mkdir()
        _copy_version(plan, version)
        moves.append(_rename(version, change.folder / str(change.version)))
    # labels before the config that names them
    if change.write_labels and plan.labels is not None:
        moves.append(_replace(work, change.folder / LABELS_FILE, plan.labels))
    if change.write_config:
        moves.append(_replace(work, change.folder / CONFIG_FILE, plan.config))
    return moves


def _write_model_files(model: Path, change: _Change) -> None:
    plan = change.plan
    version = model / str(change.version)
    version.mkdir()
    _copy_version(plan, version)
    if plan.labels is not None:
        (model / LABELS_FILE).write_text(plan.labels, encoding="utf-8")
    (model / CONFIG_FILE).write_text(plan.config, encoding="utf-8")


def _copy_version(plan: _Plan, version: Path) -> None:
    """The artifact and its companions under Triton's file names, hashed as they are copied: what lands in the
    repository is what the sidecar describes, even if a source changed after it was checked."""
    for source, filename, expected in zip(plan.sources, plan.filenames, plan.digests, strict=True):
        digest = hashlib.sha256()
        with source.open("rb") as reader, (version / filename).open("xb") as writer:
            while block := reader.read(1 << 20):
                digest.update(block)
                writer.write(block)
        if digest.hexdigest() != expected:
            raise ArtifactError(
                f"{source} changed while it was copied into the repository (sha256 no longer matches its sidecar)",
                hint="run deploy triton again once nothing is writing it",
            )
    for filename, data in plan.generated:
        with (version / filename).open("xb") as writer:
            writer.write(data)


def _assembly_parent(repo: Path) -> Path:
    """Beside the repository if a rename can move a folder from there into it, else the repository itself."""
    parent = repo.resolve().parent
    try:
        usable = parent.stat().st_dev == repo.stat().st_dev and os.access(parent, os.W_OK | os.X_OK)
    except OSError:
        usable = False
    if not usable:
        return repo
    sweep_stale(parent)
    return parent


def _rename(staged: Path, final: Path) -> Move:
    def move() -> Callable[[], None]:
        if final.exists():  # made by someone else since we looked; never merged into
            raise FileExistsError(17, "appeared while this call was writing", str(final))
        os.rename(staged, final)
        return lambda: os.rename(final, staged)

    return move


def _replace(work: Path, final: Path, text: str) -> Move:
    staged = work / final.name
    staged.write_text(text, encoding="utf-8")
    backup = work / f"{final.name}.before"
    if final.exists():
        shutil.copy2(final, backup)

    def move() -> Callable[[], None]:
        os.replace(staged, final)
        if backup.exists():
            return lambda: os.replace(backup, final)
        return lambda: final.unlink(missing_ok=True)

    return move


def _device(target: Target, artifact: Path, requested: Device | None) -> Device:
    kinds = target.triton.instance_kinds
    if requested is None:
        return "gpu" if kinds[0] == "gpu" else "cpu"
    if requested not in kinds:
        raise BadInput(
            f"{artifact} is a {target.name} artifact, which Triton runs on {' or '.join(kinds).upper()} only",
            hint=f"drop --device {requested}",
        )
    return requested


def _serving_line(target: Target) -> str:
    if target.triton.platform is not None:
        return f"platform: {pbtxt_string(target.triton.platform)}"
    return f"backend: {pbtxt_string(target.triton.backend or target.name)}"


def preferred_batch_sizes(minimum: int, maximum: int) -> tuple[int, ...]:
    """Powers of two from 4 (or the minimum) up to the profile's maximum, plus the maximum itself."""
    sizes = [size for size in (2**k for k in range(2, 16)) if max(minimum, 1) <= size <= maximum]
    if maximum not in sizes:
        sizes.append(maximum)
    return tuple(sizes)


def pbtxt_string(text: str) -> str:
    """`text` as a protobuf text-format string literal: UTF-8, with quotes, backslashes and every byte outside
    printable ASCII escaped (three-digit octal), so a name from a sidecar or an ONNX file cannot end it early."""
    escaped = []
    for byte in text.encode("utf-8"):
        if byte in b'"\\':
            escaped.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            escaped.append(chr(byte))
        else:
            escaped.append(f"\\{byte:03o}")
    return '"' + "".join(escaped) + '"'


def config_text(
    *,
    name: str,
    serving: str,
    max_batch_size: int,
    inputs: tuple[TensorInfo, ...],
    outputs: tuple[TensorInfo, ...],
    dynamic: bool,
    preferred: tuple[int, ...],
    max_queue_delay_us: int,
    instances: int,
    device: Device,
    labels: bool,
    parameters: tuple[tuple[str, str], ...] = (),
) -> str:
    """config.pbtxt in protobuf text format (Triton's ModelConfig message)."""
    lines = [f"name: {pbtxt_string(name)}", serving, f"max_batch_size: {max_batch_size}"]
    lines += _tensors("input", inputs, dynamic, label=False)
    lines += _tensors("output", outputs, dynamic, label=labels)
    for key, value in parameters:
        lines.append(f"parameters {{ key: {pbtxt_string(key)} value {{ string_value: {pbtxt_string(value)} }} }}")
    if max_batch_size > 0:
        lines += [
            "dynamic_batching {",
            f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]",
            f"  max_queue_delay_microseconds: {max_queue_delay_us}",
            "}",
        ]
    kind = "KIND_GPU" if device == "gpu" else "KIND_CPU"
    lines += ["instance_group [", "  {", f"    count: {instances}", f"    kind: {kind}", "  }", "]"]
    return "\n".join(lines) + "\n"


def _tensors(section: str, tensors: tuple[TensorInfo, ...], dynamic: bool, *, label: bool) -> list[str]:
    lines = [f"{section} ["]
    for index, tensor in enumerate(tensors):
        shape = tensor.shape[1:] if dynamic else tensor.shape
        dims = [d for d in shape if isinstance(d, int) and not isinstance(d, bool)]
        if len(dims) != len(shape):
            raise BadInput(
                f"{section} {tensor.name!r} has symbolic dimensions {tensor.shape} beyond the batch",
                hint="export with fixed image sizes (the default)",
            )
        if any(d < 1 and d != -1 for d in dims):
            raise BadInput(
                f"{section} {tensor.name!r} has dimensions {tensor.shape}; Triton needs sizes of at least 1 or -1",
                hint="re-export it with `deploy export MODEL`",
            )
        if tensor.dtype not in _TRITON_TYPES:
            raise BadInput(f"{section} {tensor.name!r} has data type {tensor.dtype}, which Triton cannot serve")
        lines += [
            "  {",
            f"    name: {pbtxt_string(tensor.name)}",
            f"    data_type: {_TRITON_TYPES[tensor.dtype]}",
            f"    dims: [ {', '.join(str(d) for d in dims)} ]",
        ]
        if label and index == 0:
            lines.append(f"    label_filename: {pbtxt_string(LABELS_FILE)}")
        lines.append("  }," if index < len(tensors) - 1 else "  }")
    lines.append("]")
    return lines


def ensemble_config_text(
    *,
    name: str,
    max_batch_size: int,
    inputs: tuple[TensorInfo, ...],
    outputs: tuple[TensorInfo, ...],
    steps: tuple[tuple[str, dict[str, str], dict[str, str]], ...],
) -> str:
    """config.pbtxt of an ensemble: each step is (model, its input ← ensemble tensor, its output → ensemble tensor)."""
    lines = [f"name: {pbtxt_string(name)}", f"platform: {pbtxt_string('ensemble')}"]
    lines.append(f"max_batch_size: {max_batch_size}")
    lines += _tensors("input", inputs, True, label=False)
    lines += _tensors("output", outputs, True, label=False)
    lines += ["ensemble_scheduling {", "  step ["]
    for index, (model, input_map, output_map) in enumerate(steps):
        lines += ["    {", f"      model_name: {pbtxt_string(model)}", "      model_version: -1"]
        for section, mapping in (("input_map", input_map), ("output_map", output_map)):
            for key, value in mapping.items():
                lines.append(f"      {section} {{ key: {pbtxt_string(key)} value: {pbtxt_string(value)} }}")
        lines.append("    }," if index < len(steps) - 1 else "    }")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"
