"""What a deployment target is: how it compiles a typed ONNX, runs the result, serves it in Triton and reports
whether it is usable here. One subclass per package under deploy/targets/, registered in deploy/targets/__init__."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from deploy.backends.base import Runner
from deploy.sidecar import Int8Recipe, Sidecar

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Check:
    """One row of `deploy doctor`: a component, whether it works, and what is disabled while it does not."""

    name: str
    ok: bool
    version: str | None
    detail: str
    disables: str  # "" when nothing


@dataclass(frozen=True)
class TargetOptions:
    """Options for one target's compile step; a target subclasses this with its own (TensorRT's profile, ...)."""

    target: ClassVar[str] = ""  # the Target.name these options are for


@dataclass(frozen=True)
class CompileRequest:
    """A typed ONNX (published, with its sidecar) to compile into `work_dir`; deploy.builder judges the result there
    and publishes it to `out_dir` beside the typed ONNX (caches, such as TensorRT's timing cache, go there too)."""

    onnx: Path
    sidecar: Sidecar
    work_dir: Path
    out_dir: Path
    options: TargetOptions | None = None  # None: the target's defaults


@dataclass(frozen=True)
class Compiled:
    """What a compile step wrote in the work folder: the artifact (plus the companions its sidecar lists), the
    sidecar to publish with it, and anything the user should know."""

    path: Path
    sidecar: Sidecar
    seconds: float
    summary: str = ""  # one line for the build table (e.g. TensorRT's layer precisions)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class TritonModelFiles:
    """How Triton loads this target's artifacts: a platform or a backend, and the file names in a version folder."""

    platform: str | None
    backend: str | None
    filenames: tuple[str, ...]  # main file first (model.onnx; model.plan; model.xml + model.bin)
    instance_kinds: tuple[str, ...] = ("cpu",)  # "gpu" / "cpu" instance groups it can serve on, default first


class Target(abc.ABC):
    name: str  # as users type it: deploy build --target NAME
    suffix: str  # the artifact's file suffix
    int8_recipe: Int8Recipe  # which INT8 typed ONNX it compiles from
    triton: TritonModelFiles
    # Where it runs: compared with eager CPU ("cpu") or eager CUDA ("cuda") in timing.
    device: str = "cpu"
    compiles: bool = True  # False: the typed ONNX is itself the artifact (compile returns None)

    def artifact_name(self, onnx: Path) -> str:
        """`resnet18.int8.onnx` → `resnet18.int8<suffix>`: the file compile() writes for that typed ONNX."""
        return onnx.stem + self.suffix

    @abc.abstractmethod
    def runner(self, artifact: Path, *, threads: int | None = None, sidecar: Sidecar | None = None) -> Runner:
        """A Runner for a published artifact of this target."""

    @abc.abstractmethod
    def availability(self) -> tuple[bool, str]:
        """Whether this machine can compile and run the target, and one line that says so (or how to fix it)."""

    @abc.abstractmethod
    def compile(self, request: CompileRequest, *, progress: Progress | None = None) -> Compiled | None:
        """The artifact built from `request.onnx`, written with its sidecar; None when the typed ONNX is itself
        the artifact (ONNX Runtime)."""

    @abc.abstractmethod
    def probe(self) -> tuple[Check, ...]:
        """`deploy doctor`'s rows for this target."""
