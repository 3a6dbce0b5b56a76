"""Atomic artifact writing and hashing: a crash or a failed check never leaves a half-written file."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from types import TracebackType

from deploy.errors import OutputNotWritable


def ensure_writable_dir(folder: Path) -> Path:
    """Create `folder` if needed and prove we can write there, before any expensive work starts."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".deploy-probe-"):
            pass
    except OSError as exc:
        raise OutputNotWritable(
            f"cannot write to output folder {folder}: {exc.strerror or exc}",
            hint="choose another folder with --out-dir or fix its permissions",
        ) from exc
    return folder


class Staging:
    """Temporary files beside their final paths, published together by `commit()`.

    Leaving the `with` block without a commit (an exception, a failed check) deletes every staged file, so an
    artifact and its sidecar appear together or not at all.
    """

    def __init__(self) -> None:
        self._pending: dict[Path, Path] = {}

    def path_for(self, final: Path) -> Path:
        fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
        os.close(fd)
        self._pending[final] = Path(tmp_name)
        return self._pending[final]

    def commit(self) -> None:
        # The artifact goes first, its sidecar last: a reader that finds a sidecar finds its artifact too,
        # and the sidecar's sha256 exposes a pair torn by a crash between the two renames.
        mode = 0o666 & ~_current_umask()  # mkstemp creates 0600; artifacts get ordinary file permissions
        for final, tmp in self._pending.items():
            os.chmod(tmp, mode)
            os.replace(tmp, final)
        self._pending.clear()

    def __enter__(self) -> Staging:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for tmp in self._pending.values():
            tmp.unlink(missing_ok=True)
        self._pending.clear()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_file(path: Path, *, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()
