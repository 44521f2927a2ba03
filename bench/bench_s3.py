"""Benchmark: the S3 stand-in (services/kit/s3server.py) against moto's own server, same requests, same run.

    .venv/bin/python bench/bench_s3.py                  # 400 requests of each kind per server; appends to RESULTS.md
    .venv/bin/python bench/bench_s3.py --n 100 --no-record

Both servers run in a process of their own (`python -m moto.server`, as `make up` started it before, and
`python -m services.kit.s3server`), one after the other, twice each in alternation. One minio client drives the
requests one workload of the saga makes (bench_saga.py): a GET of a metrics.json that does not exist, a PUT of
an empty log, a LIST of an empty staging prefix. Measured: the server process's CPU per request (/proc) and the
client's wall time per request; the ratio is moto's server over the stand-in.
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minio import Minio  # noqa: E402
from minio.error import S3Error  # noqa: E402

from bench_models import cpu_seconds, wait_port  # noqa: E402  (a sibling script: bench/ is on the path)
from reports import add_record_option, publish  # noqa: E402  (a sibling module: bench/ is on the path)
from tests.support.infra import S3_ACCESS_KEY, S3_SECRET_KEY, free_port  # noqa: E402
SERVERS = {
    "moto.server (werkzeug, all services)": lambda port: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                                          "-p", str(port)],
    "stand-in (moto S3 backend, waitress)": lambda port: [sys.executable, "-m", "services.kit.s3server",
                                                          "--port", str(port)],
}


def measure(argv: list[str], n: int) -> dict[str, tuple[float, float]]:
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY}
    server = subprocess.Popen(argv(port), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        client = Minio(f"127.0.0.1:{port}", access_key=S3_ACCESS_KEY, secret_key=S3_SECRET_KEY, secure=False)
        staging, logs = f"s-{uuid.uuid4().hex[:8]}", f"l-{uuid.uuid4().hex[:8]}"
        client.make_bucket(staging)
        client.make_bucket(logs)

        def get_missing(i: int) -> None:
            try:
                client.get_object(staging, f"w{i}/c/metrics.json")
            except S3Error:
                pass

        def put_log(i: int) -> None:
            client.put_object(logs, f"w{i}/c.log", io.BytesIO(b""), 0, content_type="text/plain; charset=utf-8")

        def list_prefix(i: int) -> None:
            list(client.list_objects(staging, prefix=f"w{i}/", recursive=True))

        results = {}
        for name, request in (("GET missing metrics.json", get_missing), ("PUT empty log", put_log),
                              ("LIST empty prefix", list_prefix)):
            for i in range(20):  # warm
                request(i)
            cpu, began = cpu_seconds(server.pid), time.perf_counter()
            for i in range(n):
                request(i)
            results[name] = ((cpu_seconds(server.pid) - cpu) * 1000 / n, (time.perf_counter() - began) * 1000 / n)
        return results
    finally:
        server.terminate()
        server.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=400, help="requests of each kind per server and round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per server")
    add_record_option(parser)
    args = parser.parse_args(argv)

    runs: dict[str, list[dict[str, tuple[float, float]]]] = {name: [] for name in SERVERS}
    for _ in range(args.rounds):
        for name, command in SERVERS.items():
            runs[name].append(measure(command, args.n))
    kinds = list(next(iter(runs.values()))[0])
    moto, ours = list(SERVERS)
    lines = [f"## bench_s3: the S3 stand-in against moto's own server ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
             "", f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, nproc={os.cpu_count()}, {platform.machine()}, "
             f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}", "",
             f"`.venv/bin/python bench/bench_s3.py --n {args.n} --rounds {args.rounds}`", "",
             "| request | server | server CPU ms / request (each round) | client wall ms / request |",
             "|---|---|---|---|"]
    for kind in kinds:
        for name in SERVERS:
            cpu = ", ".join(f"{r[kind][0]:.2f}" for r in runs[name])
            wall = ", ".join(f"{r[kind][1]:.2f}" for r in runs[name])
            lines.append(f"| {kind} | {name} | {cpu} | {wall} |")
    total = {name: sum(r[k][0] for r in runs[name] for k in kinds) for name in SERVERS}
    lines += ["", f"server CPU, moto's server / the stand-in, all requests: {total[moto] / total[ours]:.2f}x", ""]
    publish("\n".join(lines), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
