"""A bounded closed-loop load on a Triton model over gRPC: N clients each send a request, wait for its answer, repeat.

This is what perf_analyzer measures at `--concurrency-range N`; PyPI's perf-analyzer 2.60 wheel needs glibc 2.38
(GLIBC_2.38, GLIBCXX_3.4.32) and does not start on Debian 12's 2.36, so deploy measures with tritonclient instead.
Every request carries one encoded image (the ensemble's BYTES input); a failed request is counted, never retried.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deploy.errors import BadInput, MissingDependency


@dataclass(frozen=True)
class LoadResult:
    model: str
    concurrency: int
    requests: int  # answered, successfully or not
    failed: int
    seconds: float
    images_per_second: float
    p50_ms: float
    p99_ms: float
    first_error: str | None


def measure_load(
    url: str,
    model: str,
    payloads: Sequence[bytes],
    *,
    concurrency: int,
    requests: int,
    input_name: str = "IMAGE",
    timeout_s: float = 30.0,
) -> LoadResult:
    """`requests` requests in all (at least one per client), `concurrency` at a time, payloads in turn."""
    if concurrency < 1 or requests < 1 or not payloads:
        raise BadInput(
            "concurrency and requests must be at least 1, with one payload or more",
            hint="pass --concurrency 1 --requests 50 and one image or more",
        )
    try:
        import tritonclient.grpc as grpcclient
    except ImportError as exc:
        raise MissingDependency(
            "measuring a Triton server needs tritonclient", hint="pip install 'tritonclient[grpc]'"
        ) from exc

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(max(requests, concurrency)))

    def client() -> None:
        connection = grpcclient.InferenceServerClient(url)
        try:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                data = np.array([[payloads[index % len(payloads)]]], dtype=np.object_)
                tensor = grpcclient.InferInput(input_name, [1, 1], "BYTES")
                tensor.set_data_from_numpy(data)
                begun = time.perf_counter()
                try:
                    connection.infer(model, [tensor], client_timeout=timeout_s)
                except Exception as exc:  # tritonclient raises InferenceServerException and gRPC errors alike
                    with lock:
                        errors.append(str(exc))
                    continue
                elapsed = time.perf_counter() - begun
                with lock:
                    latencies.append(elapsed)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    begun = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - begun
    values = np.asarray(latencies) * 1000.0 if latencies else np.asarray([np.nan])
    return LoadResult(
        model=model,
        concurrency=concurrency,
        requests=len(latencies) + len(errors),
        failed=len(errors),
        seconds=round(seconds, 3),
        images_per_second=round(len(latencies) / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=round(float(np.percentile(values, 50)), 2),
        p99_ms=round(float(np.percentile(values, 99)), 2),
        first_error=errors[0] if errors else None,
    )
