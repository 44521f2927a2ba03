"""probe: params sleep_s (float, 0), exit_code (int, 0), output_bytes (int, 16), env_sha256 ({}).

Prints progress, writes `output.bin` (output_bytes bytes) and metrics.json, then sleeps
sleep_s seconds (a progress line about every second) and exits with exit_code. For each
`env_sha256` entry (env var name -> sha256 hex of the value it should have) metrics.json says in
`env_matches` (and a progress line) whether the variable arrived with that value: a test sees that a secret reached the
component without the value being anywhere but in the component's env."""
from __future__ import annotations

import hashlib
import os
import sys
import time

from components.runtime import Context, param, progress, run_component


def run(ctx: Context) -> None:
    sleep_s = param(ctx.params, "sleep_s", 0.0, minimum=0, maximum=7 * 86400)
    exit_code = param(ctx.params, "exit_code", 0, minimum=0, maximum=255, integer=True)
    size = param(ctx.params, "output_bytes", 16, minimum=0, maximum=2**31, integer=True)
    progress(f"probe: sleep_s={sleep_s} exit_code={exit_code} output_bytes={size}")
    pattern = b"avatar-probe\n"
    ctx.write_bytes("output.bin", (pattern * (size // len(pattern) + 1))[:size])
    expected = ctx.params.get("env_sha256") or {}
    matches = {name: hashlib.sha256(os.environ.get(name, "").encode()).hexdigest() == digest
               for name, digest in (expected.items() if isinstance(expected, dict) else [])}
    for name, matched in sorted(matches.items()):
        progress(f"probe: env {name} {'has' if matched else 'does not have'} the expected value")
    metrics = {"sleep_s": sleep_s, "exit_code": exit_code, "output_bytes": size}
    ctx.write_metrics({**metrics, "env_matches": matches} if matches else metrics)
    deadline = time.monotonic() + sleep_s
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        progress(f"probe: {max(0.0, deadline - time.monotonic()):.1f}s left")
    if exit_code:
        print(f"error: probe exits with the requested code {exit_code}", file=sys.stderr, flush=True)
        sys.exit(exit_code)
    progress("probe: done")


if __name__ == "__main__":
    run_component(run)
