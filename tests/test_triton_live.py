"""A real Triton server on 127.0.0.1 serving what `deploy triton --backend python --ensemble` writes.

The server is the CPU-only build `.ci/fetch-tritonserver` unpacks from PyPI's nvidia-pytriton wheel (Python backend
only, so the models run through ONNX Runtime inside it). One server for the module, on ports free at run time,
stopped by the fixture's finalizer; every client call has a timeout. Skipped only when that server cannot be unpacked.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deploy.cli import app
from deploy.errors import MissingDependency
from deploy.exporter import ExportResult
from deploy.harness.classify import classify
from deploy.serving.load import measure_load
from deploy.serving.server import ServeConfig, TritonServer, start_server
from deploy.serving.triton import TritonConfig, write_repository

grpcclient = pytest.importorskip("tritonclient.grpc")

ROOT = Path(__file__).resolve().parents[1]
UNPACKED = ROOT / ".cache" / "tritonserver"
CALL_TIMEOUT_S = 30.0


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (bound to 0, read back, released together so they differ)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def server_folder() -> Path:
    if not (UNPACKED / ".ready").is_file():
        try:
            subprocess.run(["bash", str(ROOT / ".ci" / "fetch-tritonserver")], check=True, timeout=600, cwd=ROOT)
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"the Triton server could not be unpacked from PyPI's nvidia-pytriton wheel: {exc}")
    return UNPACKED


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, lenet5_export: ExportResult, resnet18_export: ExportResult) -> Path:
    folder = tmp_path_factory.mktemp("live") / "model_repository"
    artifacts = (lenet5_export.onnx_path, resnet18_export.onnx_path)
    # one ONNX Runtime thread per instance: the server shares 2 cores with the preprocessing and the test itself
    write_repository(
        TritonConfig(artifacts=artifacts, repo=folder, backend="python", ensemble=True, intra_op_threads=1)
    )
    return folder


@pytest.fixture(scope="module")
def server(server_folder: Path, repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    http, grpc = free_ports(2)
    log_file = tmp_path_factory.mktemp("server") / "tritonserver.log"
    config = ServeConfig(
        repo=repo, http_port=http, grpc_port=grpc, server=server_folder, log_file=log_file, ready_timeout_s=90
    )
    running = start_server(config)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture()
def client(server: TritonServer) -> Iterator[object]:
    connection = grpcclient.InferenceServerClient(server.endpoints.grpc)
    yield connection
    connection.close()


def infer_bytes(client: object, model: str, data: bytes) -> dict[str, np.ndarray]:
    tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[data]], dtype=np.object_))
    result = client.infer(model, [tensor], client_timeout=CALL_TIMEOUT_S)  # type: ignore[attr-defined]
    return {name: result.as_numpy(name)[0] for name in ("LABELS", "PROBABILITIES", "CLASS_INDICES")}


def test_every_model_of_the_generated_repository_loads(server: TritonServer) -> None:
    ready = {model.name: model.state for model in server.started.models}
    expected = {f"{m}_python{s}" for m in ("lenet5", "resnet18") for s in ("", "_preprocess", "_topk", "_ensemble")}
    assert ready == dict.fromkeys(expected, "READY")
    assert server.endpoints.http.startswith("http://127.0.0.1:") and server.endpoints.grpc.startswith("127.0.0.1:")


def _encoded(path: Path, fmt: str, folder: Path) -> Path:
    out = folder / f"{path.stem}.{fmt.lower()}"
    with Image.open(path) as image:
        image.save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out


@pytest.mark.parametrize("model", ["lenet5", "resnet18"])
def test_image_bytes_through_the_ensemble_give_the_top5_of_deploy_infer(
    model: str,
    client: object,
    digit_files: list[tuple[Path, int]],
    photo_dir: Path,
    lenet5_export: ExportResult,
    resnet18_export: ExportResult,
    tmp_path: Path,
) -> None:
    if model == "lenet5":  # trained digits weights: a wrong preprocessing would show as wrong digits
        artifact = lenet5_export.onnx_path
        sources = [path for path, _ in digit_files[:6]]
    else:  # random weights, RGB photos at 224
        artifact = resnet18_export.onnx_path
        sources = sorted(photo_dir.glob("*.jpg"))[:3]
    files = [_encoded(p, fmt, tmp_path) for p in sources for fmt in ("PNG", "JPEG")]
    expected = classify(artifact, files, top_k=5).classifications
    for path, reference in zip(files, expected, strict=True):
        served = infer_bytes(client, f"{model}_python_ensemble", path.read_bytes())
        assert [label.decode() for label in served["LABELS"]] == [p.label for p in reference.predictions], path.name
        assert served["CLASS_INDICES"].tolist() == [p.index for p in reference.predictions]
        np.testing.assert_allclose(served["PROBABILITIES"], [p.probability for p in reference.predictions], rtol=1e-4)
    if model == "lenet5":
        digits = [int(infer_bytes(client, "lenet5_python_ensemble", p.read_bytes())["LABELS"][0]) for p in files]
        assert digits == [label for _, label in digit_files[:6] for _ in (0, 1)]


def _malformed(tmp_path: Path) -> dict[str, bytes]:
    png = io.BytesIO()
    Image.new("L", (40, 40), 128).save(png, format="PNG")
    strip = io.BytesIO()
    Image.new("L", (3000, 10), 0).save(strip, format="PNG")
    return {
        "not an image": b"this is not an image",
        "empty": b"",
        "truncated PNG": png.getvalue()[:60],
        "3000x10 strip": strip.getvalue(),
    }


def test_a_malformed_image_gets_an_error_and_the_server_stays_up(
    client: object, server: TritonServer, digit_files: list[tuple[Path, int]], tmp_path: Path
) -> None:
    for what, data in _malformed(tmp_path).items():
        with pytest.raises(grpcclient.InferenceServerException) as raised:
            infer_bytes(client, "lenet5_python_ensemble", data)
        message = str(raised.value)
        assert "image" in message or "aspect ratio" in message, (what, message)
        assert "not healthy" not in message, (what, message)
        assert server.alive()
        good = infer_bytes(client, "lenet5_python_ensemble", digit_files[0][0].read_bytes())
        assert int(good["LABELS"][0]) == digit_files[0][1], what


def test_bounded_load_at_concurrency_1_4_8_has_no_failed_request(
    server: TritonServer, digit_files: list[tuple[Path, int]]
) -> None:
    payloads = [path.read_bytes() for path, _ in digit_files]
    rows = []
    for concurrency in (1, 4, 8):
        result = measure_load(
            server.endpoints.grpc, "lenet5_python_ensemble", payloads, concurrency=concurrency, requests=40
        )
        assert result.failed == 0, result.first_error
        assert result.requests == 40 and result.images_per_second > 0 and result.p99_ms >= result.p50_ms > 0
        rows.append(result)
    print("\n".join(f"c={r.concurrency} {r.images_per_second} img/s p50 {r.p50_ms} p99 {r.p99_ms} ms" for r in rows))


def test_deploy_serve_check_reports_the_endpoints_and_stops(server_folder: Path, repo: Path, tmp_path: Path) -> None:
    http, grpc = free_ports(2)
    args = ["serve", str(repo), "--server", str(server_folder), "--http-port", str(http), "--grpc-port", str(grpc)]
    result = CliRunner().invoke(app, [*args, "--check", "--log", str(tmp_path / "log.txt"), "--json"])
    assert result.exit_code == 0, result.output
    assert f'"http": "http://127.0.0.1:{http}"' in result.stdout and f'"grpc": "127.0.0.1:{grpc}"' in result.stdout
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", http)) != 0  # stopped: nothing listens any more


def test_without_a_server_the_error_names_both_ways_to_get_one(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEPLOY_TRITONSERVER", raising=False)
    monkeypatch.setenv("PATH", os.defpath)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["serve", str(repo), "--check"])
    assert result.exit_code == MissingDependency.exit_code, result.output
    assert "nvcr.io/nvidia/tritonserver" in result.output and "bash .ci/fetch-tritonserver" in result.output
