"""Benchmark: store and download one large artifact through the models service vs the raw minio client.

    .venv/bin/python bench/bench_models.py                 # 1 GiB, appends to bench/RESULTS.md
    .venv/bin/python bench/bench_models.py --size-mib 256 --no-record

Everything is real: an S3 server (the stand-in: moto's S3 backend served by waitress, its own process), the local PostgreSQL and RabbitMQ, and the
service as a subprocess (`python -m services.models`) whose peak RSS is read from /proc (VmHWM, reset
before each phase). Same S3 server, same run, same data path for both sides:
  store     service: workload.completed → copy staging → models bucket (sha256 + part md5s, HEAD verify)
            raw:     minio get_object(staging) streamed into put_object(other bucket), client defaults
  download  service: GET /models/{id}/download?file=… streamed to the client
            raw:     minio get_object of the same object, streamed
Both download sides hash what they receive (sha256), so the client-side cost is the same.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aio_pika  # noqa: E402
import urllib3  # noqa: E402
import httpx  # noqa: E402

from contracts.topology import EXCHANGE  # noqa: E402
from services.kit.auth import mint_token  # noqa: E402
from services.kit.objectstore import ensure_buckets, make_client  # noqa: E402
from tests.integration.models.helpers import completed_event, publish, stage, workload  # noqa: E402
from tests.support.infra import S3_ACCESS_KEY, S3_SECRET_KEY, free_port, make_infra, port_open  # noqa: E402

MIB = 1024 * 1024
GIB = 1024 * MIB
CHUNK = MIB
STAGING, MODELS, RAW = "avatar-staging", "avatar-models", "bench-raw-copy"


# ---------------------------------------------------------------- processes and memory

def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak(pid: int) -> bool:
    """Writing 5 to clear_refs resets VmHWM (Linux ≥ 4.0), so each phase gets its own peak."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_mb(pid: int) -> float:
    return proc_kib(pid, "VmHWM") / 1024


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on {port} after {timeout}s")
        time.sleep(0.1)


def start_s3(port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY}
    proc = subprocess.Popen([sys.executable, "-m", "services.kit.s3server", "--port", str(port)], cwd=ROOT,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    wait_port(port)
    return proc


def start_service(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "services.models"], cwd=ROOT, env={**os.environ, **env},
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


# ---------------------------------------------------------------- the measured operations

def write_artifact(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 16 * MIB))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def raw_copy(client, key: str) -> float:
    started = time.perf_counter()
    source = client.get_object(STAGING, key)
    try:
        size = int(source.headers["content-length"])
        client.put_object(RAW, key, source, size)
    finally:
        source.close()
        source.release_conn()
    return time.perf_counter() - started


def raw_download(client, bucket: str, key: str) -> tuple[float, str]:
    started, digest = time.perf_counter(), hashlib.sha256()
    response = client.get_object(bucket, key)
    try:
        for chunk in response.stream(CHUNK):
            digest.update(chunk)
    finally:
        response.close()
        response.release_conn()
    return time.perf_counter() - started, digest.hexdigest()


def service_download(base: str, token: str, model_id: str, path: str | None) -> tuple[float, str, int]:
    """The same client stack as the raw side (urllib3, 1 MiB reads, sha256), so only the service differs."""
    query = "?" + urlencode({"file": path}) if path else ""
    started, digest, received = time.perf_counter(), hashlib.sha256(), 0
    http = urllib3.PoolManager()
    response = http.request("GET", f"{base}/models/{model_id}/download{query}", preload_content=False,
                            headers={"Authorization": f"Bearer {token}"})
    try:
        if response.status != 200:
            raise RuntimeError(f"download answered {response.status}: {response.read()[:300]!r}")
        for chunk in response.stream(CHUNK):
            digest.update(chunk)
            received += len(chunk)
    finally:
        response.release_conn()
    return time.perf_counter() - started, digest.hexdigest(), received


async def wait_stored(rabbitmq_url: str, queue_name: str, workload_id: str, timeout: float = 1800) -> dict:
    """Wait for model.stored of the workload on the broker (polling the API would load the service)."""
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name)
        async with queue.iterator(timeout=timeout) as messages:
            async for message in messages:
                async with message.process():
                    event = json.loads(message.body)
                    if event["type"] == "model.stored" and event["data"]["workload_id"] == workload_id:
                        return event["data"]
    raise RuntimeError("the model was not stored in time")


async def tap_model_stored(rabbitmq_url: str) -> str:
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("bench.model-stored", durable=False, auto_delete=False)
        await queue.bind(EXCHANGE, routing_key="model.stored")
    return "bench.model-stored"


async def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited with {proc.returncode}")
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the service did not become ready")


# ---------------------------------------------------------------- the run

async def run(size: int, rounds: int, downloads: int, workdir: Path) -> dict:
    moto_port, service_port = free_port(), free_port()
    moto = start_s3(moto_port, workdir / "moto.log")
    infra = make_infra(f"http://127.0.0.1:{moto_port}")
    await infra.fresh_database()
    infra.fresh_vhost()
    service = None
    times: dict[str, list[float]] = {k: [] for k in ("stage", "raw_store", "service_store", "raw_download",
                                                      "service_download", "archive_download")}
    peaks: dict[str, float] = {"store": 0.0, "download": 0.0, "archive": 0.0}
    cpu_per_gib: dict[str, list[float]] = {"store": [], "download": []}
    try:
        settings = infra.settings()
        client = make_client(settings)
        ensure_buckets(client, STAGING, MODELS, RAW, "avatar-logs")
        artifact = workdir / "artifact.bin"
        expected_sha = write_artifact(artifact, size)

        env = infra.environ(AVATAR_PORT=str(service_port), AVATAR_S3_ENDPOINT=settings.s3_endpoint,
                            AVATAR_LOG_LEVEL=os.environ.get("BENCH_SERVICE_LOG_LEVEL", "WARNING"),
                            AVATAR_MODELS_POLL_SECONDS="0.2", AVATAR_MODELS_DELETE_STAGED="false",
                            # the service's own knobs can be varied from the bench's environment
                            **{k: v for k, v in os.environ.items() if k.startswith("AVATAR_MODELS_")})
        env.pop("AVATAR_SERVICE", None)
        service = start_service(env, workdir / "service.log")
        base = f"http://127.0.0.1:{service_port}"
        await wait_ready(base, service)
        token = mint_token(settings, "bench", "viewer")
        tap = await tap_model_stored(infra.rabbitmq_url)
        idle_mb = proc_kib(service.pid, "VmRSS") / 1024

        for n in range(1, rounds + 1):
            workload_id, staged_key = f"WL-bench-{n}", f"WL-bench-{n}/C-agent/model.bin"
            started = time.perf_counter()
            with artifact.open("rb") as data:  # staging, as a component would (reported, not compared)
                client.put_object(STAGING, staged_key, data, size)
            times["stage"].append(time.perf_counter() - started)
            staged = stage(client, workload_id, "C-agent", "rl-agent", {}, metrics={"final_reward": 1.0})

            async def service_store() -> dict:
                reset_peak(service.pid)
                cpu = cpu_seconds(service.pid)
                started = time.perf_counter()
                await publish(infra.rabbitmq_url,
                              completed_event(workload("APP-bench", workload_id, "bench"), [staged]))
                stored = await wait_stored(infra.rabbitmq_url, tap, workload_id)
                times["service_store"].append(time.perf_counter() - started)
                cpu_per_gib["store"].append((cpu_seconds(service.pid) - cpu) * GIB / size)
                peaks["store"] = max(peaks["store"], peak_mb(service.pid))
                return stored

            # the two sides take turns going first: neither always meets the fuller server
            if n % 2:
                times["raw_store"].append(raw_copy(client, staged_key))
                model = await service_store()
            else:
                model = await service_store()
                times["raw_store"].append(raw_copy(client, staged_key))
            client.remove_object(RAW, staged_key)  # moto holds objects in memory
            client.remove_object(STAGING, staged_key)

            stored_key = f"APP-bench/{n}/rl-agent/model.bin"
            for k in range(downloads):  # downloads are cheap: several pairs per round, taking turns
                if k % 2 == 0:
                    seconds, raw_sha = raw_download(client, MODELS, stored_key)
                    times["raw_download"].append(seconds)
                reset_peak(service.pid)
                cpu = cpu_seconds(service.pid)
                seconds, service_sha, received = service_download(base, token, model["model_id"],
                                                                  "rl-agent/model.bin")
                times["service_download"].append(seconds)
                cpu_per_gib["download"].append((cpu_seconds(service.pid) - cpu) * GIB / size)
                peaks["download"] = max(peaks["download"], peak_mb(service.pid))
                if k % 2 == 1:
                    seconds, raw_sha = raw_download(client, MODELS, stored_key)
                    times["raw_download"].append(seconds)
            reset_peak(service.pid)
            seconds, _, archive_bytes = service_download(base, token, model["model_id"], None)
            times["archive_download"].append(seconds)
            peaks["archive"] = max(peaks["archive"], peak_mb(service.pid))
            if not (raw_sha == service_sha == expected_sha and received == size and archive_bytes > size):
                raise RuntimeError("downloaded bytes differ from the uploaded artifact")
            client.remove_object(MODELS, stored_key)
            print(f"round {n}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)
        return {"size": size, "rounds": rounds, "times": times, "idle_mb": idle_mb, "peaks": peaks,
                "cpu_per_gib": {k: statistics.median(v) for k, v in cpu_per_gib.items()},
                "moto_peak_mb": peak_mb(moto.pid)}
    finally:
        if service is not None:
            service.terminate()
            service.wait(30)
        moto.terminate()
        moto.wait(30)
        await infra.cleanup()


def report(result: dict, command: str) -> str:
    size_mib = result["size"] / MIB
    median = {k: statistics.median(v) for k, v in result["times"].items()}

    def rate(seconds: float) -> float:
        return size_mib / seconds

    def cell(key: str) -> str:
        runs = ", ".join(f"{rate(t):.0f}" for t in result["times"][key])
        return f"{rate(median[key]):.0f} MiB/s (median {median[key]:.1f} s; rounds: {runs} MiB/s)"

    def paired(raw: str, service: str) -> float:
        """Median of per-pair ratios: each pair ran back to back, so a noisy neighbour hits both sides."""
        return statistics.median(r / s for r, s in zip(result["times"][raw], result["times"][service]))

    store_ratio = paired("raw_store", "service_store")
    download_ratio = paired("raw_download", "service_download")
    peaks = result["peaks"]
    peak = max(peaks.values())
    verdict = lambda ok: "meets goal" if ok else "BELOW GOAL"  # noqa: E731
    machine = f"nproc {os.cpu_count()}, {platform.machine()}, Python {platform.python_version()}, {platform.platform()}"
    size_label = f"{size_mib / 1024:g} GiB" if size_mib >= 1024 else f"{size_mib:g} MiB"
    return "\n".join([
        f"## models: store and download of a {size_label} artifact ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}; load average at the end {os.getloadavg()[0]:.1f}  ",
        "S3: moto server (its own process; keeps objects in memory); service: `python -m services.models` "
        f"subprocess; {result['rounds']} round(s). Ratio = median over back-to-back pairs (the two sides take "
        "turns going first) of service throughput / raw throughput.",
        "",
        "| operation | service | raw minio client | ratio (goal >= 0.8) |",
        "|---|---|---|---|",
        f"| store (staging → models bucket; service also sha256 + verifies) | {cell('service_store')} | "
        f"{cell('raw_store')} | {store_ratio:.2f} ({verdict(store_ratio >= 0.8)}) |",
        f"| download one file | {cell('service_download')} | {cell('raw_download')} | "
        f"{download_ratio:.2f} ({verdict(download_ratio >= 0.8)}) |",
        f"| download whole model (tar stream) | {cell('archive_download')} | — | — |",
        "",
        f"Service RSS: idle {result['idle_mb']:.0f} MB; peak during store {peaks['store']:.0f} MB, "
        f"file download {peaks['download']:.0f} MB, tar download {peaks['archive']:.0f} MB "
        f"→ peak {peak:.0f} MB (goal < 200 MB: {verdict(peak < 200)}).  ",
        f"Service CPU per GiB (user+system, median): store {result['cpu_per_gib']['store']:.2f} s, "
        f"download {result['cpu_per_gib']['download']:.2f} s.  ",
        f"For reference: staging the artifact with a raw put_object: {cell('stage')}; "
        f"moto peaked at {result['moto_peak_mb']:.0f} MB.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="repeat and compare medians (shared machines are noisy)")
    parser.add_argument("--downloads", type=int, default=3, help="download pairs (raw, service) per round")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/bench_models.py", *sys.argv[1:]])
    keep = os.environ.get("BENCH_KEEP_DIR")
    with (contextlib.nullcontext(keep) if keep else tempfile.TemporaryDirectory(prefix="bench-models-")) as tmp:
        try:
            result = asyncio.run(run(args.size_mib * MIB, args.rounds, args.downloads, Path(tmp)))
        except BaseException:
            for log in ("service.log", "moto.log"):
                path = Path(tmp) / log
                if path.exists():
                    print(f"--- {log} (tail)\n" + "\n".join(path.read_text(errors="replace").splitlines()[-30:]))
            raise
    text = report(result, command)
    print(text)
    if not args.no_record:
        existing = args.results.read_text() if args.results.exists() else "# Benchmark results\n\n"
        args.results.write_text(existing.rstrip("\n") + "\n\n" + text)
        print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
