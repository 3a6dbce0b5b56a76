"""The Runner protocol every backend implements; compare and bench never know which one they hold."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Self

import numpy as np

from deploy.errors import ArtifactError

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
        self._expected: tuple[TensorMeta, ...] = ()
        self._expected_by = ""

    def expecting(self, inputs: Sequence[TensorMeta], *, artifact: str, source: str) -> Self:
        """Check on activation that the model takes `inputs` (names, ranks, fixed sizes), as `source` (its sidecar,
        or the zoo entry it was named after) says: a foreign model is refused before anything is fed to it."""
        self._expected = tuple(inputs)
        self._expected_by = f"{artifact} does not take the input {{}} that {source} describes; it takes {{}}"
        return self

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
        try:
            self._check_expected()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _check_expected(self) -> None:
        actual = {meta.name: meta for meta in self.inputs}
        for wanted in self._expected:
            found = actual.get(wanted.name)
            if found is None or not _fits(found.shape, wanted.shape):
                raise ArtifactError(
                    self._expected_by.format(_show(wanted), ", ".join(_show(m) for m in self.inputs)),
                    hint="use the sidecar that was written with this file, or re-export it with `deploy export MODEL`",
                )

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._active:
            self._active = False
            self.deactivate()


def _fits(actual: tuple[int | str, ...], wanted: tuple[int | str, ...]) -> bool:
    """Same rank, and equal wherever both sizes are fixed (a named dimension is dynamic)."""
    return len(actual) == len(wanted) and all(
        a == w for a, w in zip(actual, wanted, strict=True) if isinstance(a, int) and isinstance(w, int)
    )


def _show(meta: TensorMeta) -> str:
    return f"{meta.name!r} [{', '.join(str(d) for d in meta.shape)}]"
