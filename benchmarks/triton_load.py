"""Images in, labels out, under load: the `deploy triton --backend python --ensemble` repository on a live server.

Exports the models (lenet5 with its digits weights, resnet18 with random weights: timing only), writes one
repository, starts the server `.ci/fetch-tritonserver` unpacked on free loopback ports, and drives each ensemble with
encoded images at each concurrency (closed loop, `deploy.serving.load`), then stops the server and prints the table.

    python benchmarks/triton_load.py --requests 200 --concurrency 1 4 8
"""

from __future__ import annotations

import argparse
import io
import socket
import tempfile
from pathlib import Path

from deploy.exporter import ExportConfig, export_model
from deploy.samples import sample_digits, sample_photos
from deploy.serving.load import LoadResult, measure_load
from deploy.serving.server import ServeConfig, start_server
from deploy.serving.triton import TritonConfig, write_repository

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _payloads(model: str) -> list[bytes]:
    images = [s.image for s in sample_digits(32, offset=1500)] if model == "lenet5" else []
    if not images:
        images = [s.image.convert("RGB") for s in sample_photos(8)]
    out = []
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG" if model == "lenet5" else "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["lenet5", "resnet18"])
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    parser.add_argument("--instances", type=int, default=1, help="instances of each model in the ensemble")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per instance")
    parser.add_argument("--server", type=Path, default=ROOT / ".cache" / "tritonserver")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="triton-load-") as scratch:
        work = Path(scratch)
        artifacts = []
        for model in args.models:
            weights = None if model == "lenet5" else "random"
            exported = export_model(ExportConfig(model=model, weights=weights, out_dir=work / "export", verify=False))
            artifacts.append(exported.onnx_path)
        repo = work / "model_repository"
        config = TritonConfig(
            artifacts=tuple(artifacts),
            repo=repo,
            backend="python",
            ensemble=True,
            instances=args.instances,
            intra_op_threads=args.threads,
        )
        write_repository(config)
        serve = ServeConfig(
            repo=repo, http_port=_free_port(), grpc_port=_free_port(), server=args.server, log_file=work / "log.txt"
        )
        rows: list[LoadResult] = []
        with start_server(serve) as server:
            for model in args.models:
                payloads = _payloads(model)
                name = f"{model}_python_ensemble"
                measure_load(server.endpoints.grpc, name, payloads, concurrency=1, requests=10)  # warm-up
                for concurrency in args.concurrency:
                    result = measure_load(
                        server.endpoints.grpc, name, payloads, concurrency=concurrency, requests=args.requests
                    )
                    rows.append(result)
    print("| model | concurrency | requests | failed | img/s | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row.model} | {row.concurrency} | {row.requests} | {row.failed} | {row.images_per_second:.1f} "
            f"| {row.p50_ms:.1f} | {row.p99_ms:.1f} |"
        )


if __name__ == "__main__":
    main()
