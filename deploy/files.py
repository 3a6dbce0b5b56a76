"""Atomic artifact writing and hashing: a crash or a failed check never leaves a half-written file."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from deploy.errors import OutputNotWritable

log = logging.getLogger(__name__)

# Every temporary file or folder deploy creates beside an artifact is named `.deploy-tmp.<host>.<pid>.<purpose>.*`:
# a process killed with SIGKILL cannot clean up, and its name tells a later run that the writer is gone.
_SCRATCH = ".deploy-tmp"
_SCRATCH_NAME = re.compile(r"^\.deploy-tmp\.(?P<host>[0-9a-f]{8})\.(?P<pid>\d+)\.")


def _host_tag() -> str:
    """This host and PID namespace: containers sharing a host name and a volume must not judge each other's pids."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return hashlib.sha256(f"{socket.gethostname()}/{namespace}".encode()).hexdigest()[:8]


def scratch_prefix(purpose: str) -> str:
    """The name prefix of a temporary file or folder this process owns (see `sweep_stale`)."""
    return f"{_SCRATCH}.{_host_tag()}.{os.getpid()}.{purpose}."


@contextlib.contextmanager
def scratch_dir(parent: Path, purpose: str) -> Iterator[Path]:
    """A hidden work folder inside `parent` (same file system, so results move out by rename), removed on exit."""
    with tempfile.TemporaryDirectory(dir=parent, prefix=scratch_prefix(purpose)) as name:
        yield Path(name)


def sweep_stale(folder: Path) -> tuple[Path, ...]:
    """Remove the temporary files and folders left in `folder` by deploy processes that died without cleaning up
    (SIGKILL, power loss). Only our own names, only from this host, only when their writer is no longer running."""
    if os.name != "posix":  # os.kill(pid, 0) is no liveness probe elsewhere (on Windows it terminates the process)
        return ()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return ()
    swept = []
    for entry in entries:
        match = _SCRATCH_NAME.match(entry.name)
        if match is None or match["host"] != _host_tag() or _running(int(match["pid"])):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)
        except OSError as exc:  # another user's leftover in a shared folder: theirs to remove
            log.debug("cannot remove %s: %s", entry, exc)
            continue
        swept.append(entry)
    if swept:
        log.info("removed %d temporary file(s) left in %s by a deploy process that was killed", len(swept), folder)
    return tuple(swept)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OverflowError:
        return False
    return True


def ensure_writable_dir(folder: Path, *, option: str | None = None) -> Path:
    """Create `folder` if needed and prove we can write there, before any expensive work starts; `option` is the
    one that chose it, for the hint."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=scratch_prefix("probe")):
            pass
    except OSError as exc:
        raise OutputNotWritable(
            f"cannot write to output folder {folder}: {exc.strerror or exc}",
            hint=f"choose another folder with {option} or fix its permissions"
            if option
            else "choose a folder you can write to, or fix its permissions",
        ) from exc
    sweep_stale(folder)
    return folder


class Staging:
    """Temporary files beside their final paths, published together by `commit()`.

    Leaving the `with` block without a commit (an exception, a failed check) deletes every staged file, so an
    artifact and its sidecar appear together or not at all.
    """

    def __init__(self) -> None:
        self._pending: dict[Path, Path] = {}

    def path_for(self, final: Path) -> Path:
        fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=scratch_prefix(final.name), suffix=".tmp")
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
