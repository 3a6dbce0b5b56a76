"""`deploy serve`: a Triton Inference Server process on a model repository, started, waited for, and stopped.

Where the server comes from, first found wins: `--server` (or DEPLOY_TRITONSERVER), a `tritonserver` on PATH (NVIDIA's
container), or the CPU-only build that `.ci/fetch-tritonserver` unpacks from PyPI's nvidia-pytriton wheel into
./.cache/tritonserver. That build has the Python backend only; its backend stub embeds a CPython, which finds its
packages the way `python3` on PATH would, so the Python whose NumPy, Pillow and onnxruntime the models use goes first
on PATH (as pytriton does), and its libpython on LD_LIBRARY_PATH. The stubs are built against NumPy 1 (under NumPy 2
every tensor reaches model.py garbled), so that Python is the environment the fetch script makes beside the server
(.cache/tritonserver/python: numpy 1.26 with the project's Pillow and onnxruntime), or one given with --python.

Endpoints bind to loopback unless told otherwise. The server process is stopped with the handle (SIGTERM, then
SIGKILL after a grace period) and, on Linux, when the process that started it dies.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from deploy.errors import BadInput, DeployError, MissingDependency

log = logging.getLogger(__name__)

SERVER_ENV = "DEPLOY_TRITONSERVER"
CACHE_DIR = Path(".cache") / "tritonserver"  # where .ci/fetch-tritonserver unpacks the wheel, from the checkout root
_WHEEL_SERVER = Path("pytriton") / "tritonserver"
_WHEEL_LIBS = "nvidia_pytriton.libs"
_STUB = "triton_python_backend_stub"
Source = Literal["option", "environment", "path", "cache"]
_HOW_TO_GET_ONE = (
    "run inside NVIDIA's Triton container (docker run nvcr.io/nvidia/tritonserver:<yy.mm>-py3, tritonserver on "
    "PATH), or unpack the CPU-only server from PyPI's nvidia-pytriton wheel with `bash .ci/fetch-tritonserver` in a "
    "deploy checkout (then `deploy serve REPO` from there finds it; elsewhere pass --server .cache/tritonserver)"
)


@dataclass(frozen=True)
class ServerInstall:
    """A tritonserver binary and what it needs to start."""

    binary: Path
    source: Source
    backend_dir: Path | None  # None: the server's own default (/opt/tritonserver/backends in the container)
    libs_dir: Path | None  # the wheel's bundled libraries
    python_stubs: Path | None  # the wheel's per-Python-version backend stubs
    models_python: Path | None  # the environment .ci/fetch-tritonserver made for the Python backend's models


@dataclass(frozen=True)
class ServeConfig:
    repo: Path
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int | None = None  # None: no metrics endpoint
    server: Path | None = None  # a tritonserver binary or the folder holding one; None: look (see the module doc)
    python: Path | None = None  # the Python whose packages the Python backend uses; None: see the module doc
    ready_timeout_s: float = 120.0
    log_file: Path | None = None  # the server's own log; None: a file in the temp folder
    stop_timeout_s: float = 15.0


@dataclass(frozen=True)
class Endpoints:
    http: str  # http://HOST:PORT
    grpc: str  # HOST:PORT, as gRPC clients take it
    metrics: str | None


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    state: str


@dataclass(frozen=True)
class ServerStarted:
    """What `deploy serve` prints: where to send requests, which models are ready, where the log is."""

    pid: int
    repo: Path
    endpoints: Endpoints
    models: tuple[ServedModel, ...]
    binary: Path
    source: Source
    log_file: Path
    seconds_to_ready: float


def find_server(explicit: Path | None = None, *, cwd: Path | None = None) -> ServerInstall:
    """The first tritonserver found, in the order of the module doc; MissingDependency naming both ways to get one."""
    if explicit is not None:
        return _install_at(explicit, "option", what="--server")
    from_env = os.environ.get(SERVER_ENV)
    if from_env:
        return _install_at(Path(from_env), "environment", what=SERVER_ENV)
    on_path = shutil.which("tritonserver")
    if on_path is not None:
        return _install_at(Path(on_path), "path", what="PATH")
    cached = (cwd or Path.cwd()) / CACHE_DIR
    if (cached / _WHEEL_SERVER / "bin" / "tritonserver").is_file():
        return _install_at(cached, "cache", what=str(CACHE_DIR))
    raise MissingDependency(
        f"no Triton Inference Server found: none given with --server or {SERVER_ENV}, none on PATH, none unpacked "
        f"in {cached}",
        hint=_HOW_TO_GET_ONE,
    )


def _install_at(path: Path, source: Source, *, what: str) -> ServerInstall:
    """A binary, an unpacked wheel (its root or its pytriton/tritonserver), or a Triton install folder."""
    path = path.expanduser()
    if path.is_dir():
        for root in (path / _WHEEL_SERVER, path):
            if (root / "bin" / "tritonserver").is_file():
                path = root / "bin" / "tritonserver"
                break
    if not path.is_file() or not os.access(path, os.X_OK):
        raise MissingDependency(f"{what} names {path}, which is not an executable tritonserver", hint=_HOW_TO_GET_ONE)
    home = path.resolve().parent.parent  # .../tritonserver/bin/tritonserver
    backends = home / "backends"
    wheel_libs = home.parent.parent / _WHEEL_LIBS
    stubs = home / "python_backend_stubs"
    models_python = home.parent.parent / "python" / "bin" / "python"
    return ServerInstall(
        binary=path,
        source=source,
        backend_dir=backends if backends.is_dir() else None,
        libs_dir=wheel_libs if wheel_libs.is_dir() else None,
        python_stubs=stubs if stubs.is_dir() else None,
        models_python=models_python if wheel_libs.is_dir() and models_python.is_file() else None,
    )


@dataclass(frozen=True)
class _Python:
    executable: Path
    version: str  # "3.11"
    libdir: str | None
    numpy: str | None  # its NumPy version, None when it has none


_PROBE = """import sys, sysconfig
try:
    import numpy
    version = numpy.__version__
except Exception:
    version = ""
print(f"{sys.version_info[0]}.{sys.version_info[1]}")
print(sysconfig.get_config_var("LIBDIR") or "")
print(version)
"""


def _python_info(python: Path) -> _Python:
    try:
        done = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BadInput(f"--python {python} does not run ({exc})", hint="pass the path of a python3 executable") from exc
    version, libdir, numpy = (line.strip() for line in [*done.stdout.splitlines(), "", "", ""][:3])
    # not resolved: a venv's python is a link to the base interpreter, and the venv is what the stub must find
    return _Python(python.absolute(), version, libdir or None, numpy or None)


def _models_python(install: ServerInstall, requested: Path | None) -> _Python | None:
    """The Python the Python backend's stub embeds, for the wheel's server; None for any other (left as it is)."""
    if install.libs_dir is None and requested is None:
        return None
    python = requested or install.models_python
    if python is None:
        raise BadInput(
            f"the Triton server at {install.binary} has no Python environment for its models beside it",
            hint="run `bash .ci/fetch-tritonserver` again (it makes one), or pass --python with a Python that has "
            "numpy<2, Pillow and onnxruntime",
        )
    return _python_info(python)


def _check_stub(install: ServerInstall, python: _Python) -> None:
    """The wheel's backend stub embeds one CPython version, built against NumPy 1; the models' Python must be that
    version, with a NumPy 1."""
    if install.backend_dir is None or install.python_stubs is None:
        return
    if python.numpy is None or not python.numpy.startswith("1."):
        raise BadInput(
            f"{python.executable} has NumPy {python.numpy or '(none)'}; the Python backend stub of {install.binary} "
            "needs NumPy 1 (under NumPy 2 tensors reach model.py garbled)",
            hint="drop --python to use the environment `bash .ci/fetch-tritonserver` makes, or pass one with "
            "numpy<2, Pillow and onnxruntime",
        )
    installed = install.backend_dir / "python" / _STUB
    wanted = install.python_stubs / python.version / _STUB
    if not wanted.is_file():
        raise BadInput(
            f"the Triton server at {install.binary} has no Python backend stub for Python {python.version}",
            hint="pass --python with a Python 3.8 to 3.13 that has numpy, Pillow and onnxruntime",
        )
    if not installed.is_file() or installed.read_bytes() != wanted.read_bytes():
        raise BadInput(
            f"the Python backend stub at {installed} is not the one for Python {python.version} ({python.executable})",
            hint=f"run `PYTHON={python.executable} bash .ci/fetch-tritonserver` to install that Python's stub",
        )


def _environment(install: ServerInstall, python: _Python | None) -> dict[str, str]:
    env = dict(os.environ)
    if python is None:
        return env  # NVIDIA's container: its own Python and libraries, as it was set up
    libs = str(install.libs_dir) if install.libs_dir is not None else None
    libraries = [p for p in (python.libdir, libs, env.get("LD_LIBRARY_PATH")) if p]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libraries)
    # The stub's embedded CPython takes its prefix (and so site-packages, a venv's too) from `python3` on PATH.
    env["PATH"] = os.pathsep.join([str(python.executable.parent), env.get("PATH", "")])
    return env


def _validate(config: ServeConfig) -> None:
    if not config.repo.is_dir():
        raise BadInput(
            f"model repository {config.repo} is not a folder", hint="write one with `deploy triton MODEL --repo DIR`"
        )
    if not any((entry / "config.pbtxt").is_file() for entry in config.repo.iterdir() if entry.is_dir()):
        raise BadInput(
            f"{config.repo} holds no model (no folder with a config.pbtxt)",
            hint="write one with `deploy triton MODEL --repo DIR`",
        )
    ports = [p for p in (config.http_port, config.grpc_port, config.metrics_port) if p is not None]
    if any(not 1 <= p <= 65535 for p in ports) or len(set(ports)) != len(ports):
        raise BadInput(
            f"ports {ports} must be distinct and between 1 and 65535",
            hint="pass --http-port 8000 --grpc-port 8001",
        )
    if not config.host or config.ready_timeout_s <= 0:
        raise BadInput("--host must not be empty and --timeout must be positive", hint="pass --host 127.0.0.1")
    taken = [port for port in ports if not _port_free(config.host, port)]
    if taken:  # another server there would answer our readiness probe and pass for ours
        raise BadInput(
            f"port{'s' if len(taken) > 1 else ''} {', '.join(map(str, taken))} on {config.host} already in use",
            hint="stop what listens there, or pass other ports: --http-port 8100 --grpc-port 8101",
        )


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def server_command(install: ServerInstall, config: ServeConfig, *, shm_prefix: str) -> list[str]:
    """tritonserver's command line: every model in the repository loaded at start, readiness only when all are."""
    command = [
        str(install.binary),
        f"--model-repository={config.repo.resolve()}",
        f"--http-address={config.host}",
        f"--http-port={config.http_port}",
        f"--grpc-address={config.host}",
        f"--grpc-port={config.grpc_port}",
        "--strict-readiness=true",
        "--exit-on-error=true",
        "--exit-timeout-secs=5",
        # Each server's Python backend gets its own shared-memory names: servers started side by side (tests,
        # other users of the machine) never open each other's regions.
        f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
    ]
    if config.metrics_port is None:
        command.append("--allow-metrics=false")
    else:
        command += ["--allow-metrics=true", f"--metrics-address={config.host}", f"--metrics-port={config.metrics_port}"]
    if install.backend_dir is not None:
        command.append(f"--backend-directory={install.backend_dir}")
    return command


def _die_with_parent_hook() -> Callable[[], None] | None:
    """For the child before exec (Linux): SIGTERM when the thread that started the server ends (PR_SET_PDEATHSIG
    follows the forking thread, not the process). libc is loaded here in the parent: importing or loading a library
    between fork and exec can deadlock on a lock another thread held at fork time."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return hook


class TritonServer:
    """A running tritonserver; a context manager that stops it."""

    def __init__(self, process: subprocess.Popen[bytes], started: ServerStarted, stop_timeout_s: float) -> None:
        self.process = process
        self.started = started
        self._stop_timeout_s = stop_timeout_s

    @property
    def endpoints(self) -> Endpoints:
        return self.started.endpoints

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self) -> int:
        return self.process.wait()

    def stop(self) -> int:
        """SIGTERM (Triton finishes in-flight requests and unloads), then SIGKILL after the grace period."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=self._stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver %d did not stop in %.0f s; killed", self.process.pid, self._stop_timeout_s)
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def start_server(config: ServeConfig, *, progress: Callable[[str], None] | None = None) -> TritonServer:
    """Start tritonserver on `config.repo` and return once every model is ready; stopped again on any failure."""
    _validate(config)
    install = find_server(config.server)
    python = _models_python(install, config.python)
    if python is not None:
        _check_stub(install, python)
    default_log = Path(tempfile.gettempdir()) / f"deploy-tritonserver-{os.getpid()}-{config.http_port}.log"
    log_file = config.log_file or default_log
    shm_prefix = f"deploy_{os.getpid()}_{secrets.token_hex(4)}_"
    command = server_command(install, config, shm_prefix=shm_prefix)
    log.debug("starting %s", " ".join(command))
    if progress is not None:
        progress(f"starting {install.binary} on {config.repo}")
    begun = time.perf_counter()
    with log_file.open("wb") as sink:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=_environment(install, python),
            preexec_fn=_die_with_parent_hook() if sys.platform.startswith("linux") else None,
        )
    endpoints = _endpoints(config)
    server = TritonServer(
        process,
        ServerStarted(process.pid, config.repo, endpoints, (), install.binary, install.source, log_file, 0.0),
        config.stop_timeout_s,
    )
    try:
        _wait_ready(server, config, log_file)
        models = _models(config)
    except BaseException:
        server.stop()
        raise
    server.started = ServerStarted(
        process.pid, config.repo, endpoints, models, install.binary, install.source, log_file,
        round(time.perf_counter() - begun, 2),
    )  # fmt: skip
    return server


def _endpoints(config: ServeConfig) -> Endpoints:
    host = f"[{config.host}]" if ":" in config.host else config.host
    metrics = None if config.metrics_port is None else f"http://{host}:{config.metrics_port}/metrics"
    return Endpoints(f"http://{host}:{config.http_port}", f"{host}:{config.grpc_port}", metrics)


def _client_host(config: ServeConfig) -> str:
    """Where this process reaches the server: a wildcard address is reached on loopback."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(config.host, config.host)


def _request(config: ServeConfig, method: str, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(_client_host(config), config.http_port, timeout=timeout)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _wait_ready(server: TritonServer, config: ServeConfig, log_file: Path) -> None:
    deadline = time.monotonic() + config.ready_timeout_s
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            raise DeployError(
                f"tritonserver exited with code {code} before it was ready:\n{_tail(log_file)}",
                hint=f"read {log_file}; a port in use: pass --http-port and --grpc-port; a model that does not load: "
                "rewrite it with `deploy triton`",
            )
        with contextlib.suppress(OSError, http.client.HTTPException):
            if _request(config, "GET", "/v2/health/ready", timeout=2.0)[0] == 200:
                return
        time.sleep(0.25)
    raise DeployError(
        f"tritonserver was not ready within {config.ready_timeout_s:g} s:\n{_tail(log_file)}",
        hint=f"read {log_file}, or pass a longer --timeout",
    )


def _models(config: ServeConfig) -> tuple[ServedModel, ...]:
    status, body = _request(config, "POST", "/v2/repository/index")
    if status != 200:
        return ()
    return tuple(
        ServedModel(str(m.get("name", "")), str(m.get("version", "")), str(m.get("state", "")))
        for m in json.loads(body)
    )


def _tail(log_file: Path, lines: int = 12) -> str:
    try:
        text = log_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    interesting = [line for line in text.splitlines() if line.strip() and not line.startswith(("+", "|"))]
    return "\n".join(interesting[-lines:])
