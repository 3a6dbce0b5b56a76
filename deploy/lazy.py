"""Import heavy or GPU-only packages at the point of use, with an error that names the pip extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from deploy.errors import MissingDependency

_EXTRA_FOR = {
    "tensorrt": "tensorrt",
    "pycuda": "tensorrt",
    "pycuda.driver": "tensorrt",
    "modelopt": "precision",
}


def require(module: str, *, purpose: str) -> ModuleType:
    """Import `module`, or raise MissingDependency saying what needs it and which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRA_FOR.get(module)
        install = f'pip install -e ".[{extra}]"' if extra else f"pip install {module.split('.')[0]}"
        raise MissingDependency(
            f"{purpose} needs the Python package '{module}', which is not importable ({exc})",
            hint=f"install it with: {install}",
        ) from exc
