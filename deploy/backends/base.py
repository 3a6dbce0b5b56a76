"""The Runner protocol every backend implements; compare and bench never know which one they hold."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from deploy.backends.timing import BenchConfig, GpuStages


@dataclass(frozen=True)
class TensorMeta:
    """An input or output as the runner sees it; a string dimension is dynamic (e.g. "batch")."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str


class Runner(abc.ABC):
    """A context manager that runs a model: `infer` maps ONNX tensor names to arrays and returns fresh arrays."""

    name: str = "runner"

    def __init__(self) -> None:
        self._active = False

    @abc.abstractmethod
    def activate(self) -> None:
        """Load whatever the runner needs (sessions, engines, buffers)."""

    @abc.abstractmethod
    def deactivate(self) -> None:
        """Free what `activate` created, and nothing else."""

    @property
    @abc.abstractmethod
    def inputs(self) -> tuple[TensorMeta, ...]: ...

    @property
    @abc.abstractmethod
    def outputs(self) -> tuple[TensorMeta, ...]: ...

    @abc.abstractmethod
    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once. Returned arrays belong to the caller: the runner never reuses them."""

    def gpu_stages(self, feeds: Sequence[Mapping[str, np.ndarray]], config: BenchConfig) -> GpuStages | None:
        """Per-stage CUDA timings (H2D, compute, D2H) for runners that run on a GPU; None for CPU runners."""
        return None

    def __enter__(self) -> Runner:
        self.activate()
        self._active = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._active:
            self._active = False
            self.deactivate()
