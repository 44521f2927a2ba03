"""Bad input against the six running services (issue: the whole saga, "Bad input").

- schemathesis (CLI, as a subprocess) runs every phase it has (examples, coverage, fuzzing, stateful) against
  each service's /openapi.json with an admin token: zero 5xx, and every 4xx carries a JSON `detail` a person
  can read (the `refusal_has_a_message` check in tests/e2e/schemathesis_hooks.py). Nothing is excluded: no
  endpoint streams forever on generated input (a log `follow=true` only streams for a run that exists).
- what schemathesis does not send: bodies over the limit (413, with and without Content-Length) and JSON
  that only Python accepts (NaN, Infinity, 1e999, lone surrogates → 422), and JSON nested deeper than any
  request is (422 naming where), on a POST of every service.

Bounded for CI: AVATAR_FUZZ_MAX_EXAMPLES (default 20) test cases per operation and phase; all six services
take about a minute here. AVATAR_FUZZ_SEED replays a run (schemathesis prints its seed).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from services.kit.auth import mint_token
from services.kit.stack import SERVICES
from tests.e2e.conftest import bearer, running_stack, urls

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = int(os.environ.get("AVATAR_FUZZ_MAX_EXAMPLES", "20"))
SEED = os.environ.get("AVATAR_FUZZ_SEED")
LIMIT = 1_048_576  # Settings.max_body_bytes default, which the stack runs with

# One POST of each service (the scheduler and the models service POSTs take no body: the guard must
# refuse an oversized one all the same).
POSTS = {"library": "/components", "builder": "/apps", "trainer": "/training-requests",
         "approval": "/approvals/WL-FUZZ/reject", "scheduler": "/workloads/WL-FUZZ/cancel",
         "models": "/apps/APP-FUZZ/aliases/production/rollback"}


@pytest.fixture(scope="module")
def admin(settings) -> dict[str, str]:
    return bearer(settings, "fuzz-admin", "admin")


@pytest.fixture(scope="module")
async def fuzz_stack(infra, tmp_path_factory):
    """A stack of its own: the fuzzer is an admin and changes what it finds (components, thresholds,
    nodes), which the saga tests on the shared stack rely on."""
    async with running_stack(infra, tmp_path_factory.mktemp("fuzz-stack"),
                             redis_prefix=f"{infra.redis_prefix}fuzz:") as started:
        yield started


@pytest.fixture(scope="module")
def base(fuzz_stack) -> dict[str, str]:
    return urls(fuzz_stack)


@pytest.mark.slow
@pytest.mark.parametrize("service", SERVICES)
def test_schemathesis_finds_no_server_error_and_every_refusal_explains_itself(service, base, settings,
                                                                              tmp_path):
    token = mint_token(settings, "fuzz-admin", "admin")
    # run outside the repository: schemathesis keeps a cache (.schemathesis/) in its working directory
    (tmp_path / "schemathesis.toml").write_text("[cache]\nenabled = false\n")
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{base[service]}/openapi.json",
               "--checks", "not_a_server_error,refusal_has_a_message",
               "--header", f"Authorization: Bearer {token}",
               "--max-examples", str(MAX_EXAMPLES), "--request-timeout", "15",
               "--suppress-health-check", "all", "--no-color"]
    if SEED:
        command += ["--seed", SEED]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    summary = [line.strip() for line in output.splitlines() if re.match(r"\s*(\d+ generated|Seed:)", line)]
    print(f"{service}: {' | '.join(summary)}")
    assert result.returncode == 0, f"schemathesis found problems in {service}:\n{output[-15000:]}"
    assert " passed" in output and "generated" in output, output[-3000:]


def _chunks(data: bytes, size: int = 65536):
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.mark.parametrize("service", SERVICES)
def test_oversized_body_is_refused_with_413(service, base, admin):
    big = json.dumps({"name": "x" * (2 * LIMIT), "comment": "too big"}).encode()
    headers = {**admin, "Content-Type": "application/json"}
    url = f"{base[service]}{POSTS[service]}"
    with httpx.Client(timeout=30) as http:
        declared = http.post(url, content=big, headers=headers)
        assert declared.request.headers["content-length"] == str(len(big))
    with httpx.Client(timeout=30) as http:
        streamed = http.post(url, content=_chunks(big), headers=headers)
        assert streamed.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in streamed.request.headers
    for response in (declared, streamed):
        assert response.status_code == 413, response.text[:300]
        assert f"larger than {LIMIT} bytes" in response.json()["detail"]


def _refusals(base: dict[str, str], admin: dict[str, str], raw: bytes | str) -> dict[str, dict]:
    """POST `raw` as JSON to one route of every service; each must be a 422 with one error, returned."""
    refusals = {}
    with httpx.Client(timeout=10, headers={**admin, "Content-Type": "application/json"}) as http:
        for service in SERVICES:
            response = http.post(f"{base[service]}{POSTS[service]}", content=raw)
            assert response.status_code == 422, (service, response.status_code, response.text[:300])
            [refusals[service]] = response.json()["detail"]
    return refusals


@pytest.mark.parametrize("raw", [
    b'{"name": "bad", "params": {"lr": NaN}}',
    b'{"name": "bad", "params": {"lr": Infinity}}',
    b'{"name": "bad", "params": {"lr": 1e999}}',
    b'{"name": "\\ud800", "comment": "\\udfff"}',
], ids=["NaN", "Infinity", "1e999", "lone-surrogate"])
def test_json_that_only_python_accepts_is_refused_with_422(raw, base, admin):
    for service, error in _refusals(base, admin, raw).items():
        assert error["type"] == "json_invalid" and error["msg"], (service, error)


@pytest.mark.parametrize("levels", [300, 100_000])
def test_json_nested_deeper_than_any_request_is_refused_with_422_naming_where(levels, base, admin):
    raw = '{"name": "deep", "params": ' + '{"a": ' * levels + "1" + "}" * levels + "}"
    for service, error in _refusals(base, admin, raw).items():
        assert error["type"] == "json_too_deep", (service, error)
        if levels < 1000:  # within what Python's parser reads, the refusal says where
            assert error["loc"][:3] == ["body", "params", "a"] and "(at params.a.a" in error["msg"], error
