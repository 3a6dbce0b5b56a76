"""Deployment targets, registered in one place. A new target is a package under deploy/targets/ with a Target
subclass, plus its two lines here (import, register)."""

from __future__ import annotations

from pathlib import Path

from deploy.backends.base import Runner, TensorMeta
from deploy.errors import BadInput
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


def runner_for(artifact: Path, *, threads: int | None = None, sidecar: Sidecar | None = None) -> Runner:
    """The runner of `artifact`'s target; with its sidecar, one that refuses a model taking other inputs."""
    runner = target_for(artifact).runner(artifact, threads=threads, sidecar=sidecar)
    if sidecar is None:
        return runner
    expected = [TensorMeta(t.name, t.shape, t.dtype) for t in sidecar.inputs]
    return runner.expecting(expected, artifact=str(artifact), source=f"its sidecar {sidecar_path(artifact)}")


__all__ = ["TARGETS", "Target", "artifact_suffixes", "get_target", "register", "runner_for", "target_for"]
