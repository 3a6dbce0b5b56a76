"""The errors a user can cause or fix. The CLI turns each into one line plus the fix, and its exit code."""

from __future__ import annotations


class DeployError(Exception):
    """A failure the user can act on: `message` says what went wrong, `hint` says how to fix it."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} ({self.hint})"


class BadInput(DeployError):
    """An argument, file or image the user gave cannot be used as it is."""

    exit_code = 2


class UnknownModel(BadInput):
    """A model name that is not in the zoo."""


class WeightsError(BadInput):
    """Weights that cannot be found, read or fitted to the architecture."""


class ArtifactError(BadInput):
    """An ONNX file, plan or sidecar that is missing, corrupt, stale or foreign."""


class OutputNotWritable(DeployError):
    """The folder an artifact should go to cannot be written."""

    exit_code = 4


class MissingDependency(DeployError):
    """An optional package is not installed; the hint names the pip extra."""

    exit_code = 5


class ParityError(DeployError):
    """A deployed model's outputs differ from eager PyTorch beyond tolerance."""

    exit_code = 3


class ExportFailed(DeployError):
    """torch.onnx.export, the ONNX checker or the simplifier failed on a model."""


def first_line(exc: BaseException) -> str:
    """The first line of a third-party exception's message (they often carry pages of context), or its type name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
