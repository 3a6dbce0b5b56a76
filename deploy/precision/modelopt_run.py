"""Calling ModelOpt quietly (it logs and draws progress bars freely; we keep that for --debug only), on a private
copy of its input."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)


def modelopt_version() -> str:
    try:
        return metadata.version("nvidia-modelopt")
    except metadata.PackageNotFoundError:
        return "unknown"


@contextlib.contextmanager
def quiet(tool: str) -> Iterator[None]:
    """Capture what ModelOpt prints and logs (it binds a stdout handler of its own); replay it at debug level."""
    captured = io.StringIO()
    modelopt_logs = logging.getLogger("modelopt.onnx")
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            _bind_modelopt_logs_to(captured)
            yield
    finally:
        # Afterwards ModelOpt's records go through our own logging (warnings and up, or all with --debug).
        for handler in modelopt_logs.handlers[:]:
            modelopt_logs.removeHandler(handler)
        modelopt_logs.setLevel(logging.WARNING)
        modelopt_logs.propagate = True
        log.debug("%s output:\n%s", tool, captured.getvalue())


def _bind_modelopt_logs_to(stream: io.StringIO) -> None:
    modelopt_logs = logging.getLogger("modelopt.onnx")
    for handler in modelopt_logs.handlers[:]:
        modelopt_logs.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    modelopt_logs.addHandler(handler)
    modelopt_logs.setLevel(logging.INFO)
    modelopt_logs.propagate = False


def private_copy(source: Path, scratch: Path) -> Path:
    """A copy of `source` in `scratch` for ModelOpt to read: it may write back to its input (PTQ does, measured
    on 0.47), and a link would let that rewrite the user's export in place, non-atomically."""
    copy = scratch / source.name
    shutil.copyfile(source, copy)
    return copy
