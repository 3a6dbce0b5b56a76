"""Deployment targets, registered in one place. A new target is a package under deploy/targets/ with a Target
subclass, plus its two lines here (import, register)."""

from __future__ import annotations

from pathlib import Path

from deploy.backends.base import Runner, TensorMeta
from deploy.errors import BadInput, MissingDependency
from deploy.sidecar import Sidecar, sidecar_path
from deploy.targets.base import Target
from deploy.targets.onnxruntime import OnnxRuntime
from deploy.targets.openvino import OpenVino
from deploy.targets.tensorrt import TensorRT

TARGETS: dict[str, Target] = {}
# Earlier spellings of --target: "cpu" was the ONNX Runtime INT8 recipe's name.
ALIASES = {"cpu": "onnxruntime", "ort": "onnxruntime", "trt": "tensorrt", "ov": "openvino"}


def register(target: Target) -> Target:
    if target.name in TARGETS:
        raise ValueError(f"target {target.name!r} is registered twice")
    if any(t.suffix == target.suffix for t in TARGETS.values()):
        raise ValueError(f"target {target.name!r} reuses the artifact suffix {target.suffix}")
    TARGETS[target.name] = target
    return target


register(OnnxRuntime())
register(TensorRT())
register(OpenVino())


def get_target(name: str) -> Target:
    target = TARGETS.get(ALIASES.get(name, name))
    if target is None:
        raise BadInput(f"--target {name!r} is unknown", hint=f"choose one of {', '.join(TARGETS)}")
    return target


def artifact_suffixes() -> tuple[str, ...]:
    return tuple(t.suffix for t in TARGETS.values())


def target_for(artifact: Path) -> Target:
    """The target whose artifacts end like `artifact`."""
    target = next((t for t in TARGETS.values() if t.suffix == artifact.suffix), None)
    if target is None:
        kinds = ", ".join(f"{t.suffix} ({t.name})" for t in TARGETS.values())
        raise BadInput(
            f"{artifact} is not a deploy artifact: expected one of {kinds}",
            hint="pass an artifact from `deploy export` or `deploy build`",
        )
    return target


def check_runnable(artifact: Path) -> Target:
    """The target of `artifact`, refused (exit 5) before any work when it cannot run here: a TensorRT plan on a
    machine without TensorRT or a GPU would otherwise fail only after eager PyTorch had set up CUDA."""
    target = target_for(artifact)
    usable, status = target.availability()
    if usable:
        return target
    source = artifact.with_suffix(".onnx")  # compile() names the artifact after its typed ONNX
    where = "on a machine with an NVIDIA GPU, " if target.device == "cuda" else ""
    fallback = (
        f"{source} beside it (the ONNX it was compiled from) runs here"
        if source.is_file()
        else f"the typed ONNX it was compiled from ({source.name}, from `deploy build`) runs here"
    )
    raise MissingDependency(
        f"{artifact} is a {target.name} artifact, which cannot run here: {status}",
        hint=f"{where}install what that names (`deploy doctor` checks it); {fallback}",
    )


def runner_for(artifact: Path, *, threads: int | None = None, sidecar: Sidecar | None = None) -> Runner:
    """The runner of `artifact`'s target; with its sidecar, one that refuses a model taking other inputs."""
    runner = target_for(artifact).runner(artifact, threads=threads, sidecar=sidecar)
    if sidecar is None:
        return runner
    expected = [TensorMeta(t.name, t.shape, t.dtype) for t in sidecar.inputs]
    return runner.expecting(expected, artifact=str(artifact), source=f"its sidecar {sidecar_path(artifact)}")


__all__ = [
    "TARGETS",
    "Target",
    "artifact_suffixes",
    "check_runnable",
    "get_target",
    "register",
    "runner_for",
    "target_for",
]
