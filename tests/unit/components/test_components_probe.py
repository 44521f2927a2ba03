"""probe honours exit_code, sleep_s and output_bytes, and stops on SIGTERM."""
from __future__ import annotations

import json
import time

from component_harness import component_env, run, start


def test_probe_defaults_succeed_with_outputs(tmp_path):
    result = run("probe", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "output.bin").stat().st_size == 16
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"sleep_s": 0.0, "exit_code": 0, "output_bytes": 16}
    assert "probe: done" in result.stdout


def test_probe_exits_with_the_requested_code(tmp_path):
    result = run("probe", str(tmp_path), params={"exit_code": 3, "output_bytes": 1000})
    assert result.returncode == 3
    assert result.stderr.startswith("error: probe exits with the requested code 3")
    assert (tmp_path / "output.bin").stat().st_size == 1000


def test_probe_sleeps_for_sleep_s(tmp_path):
    started = time.monotonic()
    result = run("probe", str(tmp_path), params={"sleep_s": 1.2})
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed >= 1.2, "the probe returned before sleep_s had passed"
    assert elapsed < 10
    assert "left" in result.stdout


def test_probe_stops_promptly_on_sigterm(tmp_path):
    proc = start("probe", component_env(str(tmp_path), params={"sleep_s": 60}))
    while "probe:" not in proc.stdout.readline():
        pass
    started = time.monotonic()
    proc.terminate()
    proc.communicate(timeout=5)
    assert time.monotonic() - started < 3
    assert proc.returncode == 143
