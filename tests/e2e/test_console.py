"""The web console (issue 24) in real headless Chromium against the running stack: the gateway serves
console/dist, the browser logs in, follows a training request through approval, the loop test's reward
chart, the queue and the model download, all updated live from the SSE stream; a viewer changes nothing.

The console is built here when console/dist is missing or older than its sources (npm ci first when
node_modules is missing or older than package-lock.json). Screenshots go to .run/console-artifacts/.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from services.kit.demo import EXAMPLE_COMPONENTS, Demo
from services.kit.settings import Settings
from tests.e2e.conftest import urls
from tests.support.oidc_provider import running_oidc_provider

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"
ARTIFACTS = ROOT / ".run" / "console-artifacts"
CHROMIUM = os.environ.get("AVATAR_CHROMIUM", "/usr/bin/chromium")
SOURCES = ("src", "index.html", "vite.config.ts", "tsconfig.json", "package.json", "package-lock.json")


def _tools() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if not Path(CHROMIUM).exists():
        missing.append(CHROMIUM)
    if missing:  # a missing tool is a failed check, never a quietly skipped one
        pytest.fail(f"the console's tests need {', '.join(missing)} (.ci/run installs them)")


def _newest(paths) -> float:
    newest = 0.0
    for path in paths:
        if path.is_dir():
            newest = max([newest, *(p.stat().st_mtime for p in path.rglob("*") if p.is_file())])
        elif path.exists():
            newest = max(newest, path.stat().st_mtime)
    return newest


def _npm(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1", "CI": os.environ.get("CI", "")}
    return subprocess.run(["npm", *args], cwd=CONSOLE, env=env, capture_output=True, text=True, timeout=timeout)


def _check(done: subprocess.CompletedProcess, what: str) -> None:
    assert done.returncode == 0, f"{what} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    _tools()
    lock_stamp = CONSOLE / "node_modules" / ".package-lock.json"
    if not lock_stamp.exists() or lock_stamp.stat().st_mtime < (CONSOLE / "package-lock.json").stat().st_mtime:
        _check(_npm("ci", "--no-audit", "--no-fund"), "npm ci")
    return CONSOLE / "node_modules"


@pytest.fixture(scope="module")
def built(node_modules) -> Path:
    index = CONSOLE / "dist" / "index.html"
    if not index.exists() or index.stat().st_mtime < _newest(CONSOLE / s for s in SOURCES):
        _check(_npm("run", "build"), "npm run build")
    return index.parent


def test_unit_tests_of_the_console_pass(node_modules):
    """Vitest + Testing Library: the SSE-to-cache hook, the approve/reject/cancel rules, the API client."""
    done = _npm("test", timeout=300)
    _check(done, "vitest")
    assert " passed" in done.stdout


def test_the_initial_javascript_stays_within_300_kb_gzipped(built):
    done = subprocess.run(["node", "scripts/bundle-size.mjs"], cwd=CONSOLE, capture_output=True, text=True, timeout=60)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "bundle-size.json").write_text(done.stdout)
    figures = json.loads(done.stdout)
    assert done.returncode == 0 and figures["initial_js_gzip_bytes"] <= 300 * 1024, figures
    # the chart library is not part of the first load: its chunk is only imported by the chart screens
    assert not any("Chart" in name for name in figures["files"]), figures


@pytest.fixture(scope="module")
def demo(stack) -> Demo:
    return Demo(urls(stack), Settings(env="local"), timeout=120, episodes=10)


@pytest.fixture(scope="module")
def ready_apps(demo) -> tuple[str, str]:
    """Seed 001's example App (the four-component chain, 4 GPUs: it needs approval, plus the imported
    Task) and a small one below the threshold, built through the builder's API, ready in the trainer."""
    components = demo.library_components()
    source = demo.build_app("PreProcessor-App", [("data-preprocessing", ["data-loader"])], components)
    big = demo.build_app("RL-DesignOpt-v1", [("parameter-optimization", list(EXAMPLE_COMPONENTS))], components,
                         training_config={"episodes": 10}, imports=(source,))
    small = demo.build_app("DataPrep-Batch", [("prep", ["data-loader"])], components)
    demo.ready_in_trainer(big)
    demo.ready_in_trainer(small)
    return big, small


@pytest.fixture
def nodes_restored(demo):
    """The browser drains every node to keep work waiting in the queue; whatever happens, they end Active
    (the package's other tests share this stack)."""
    yield
    for node in demo.call("GET", "scheduler", "/nodes", headers=demo.admin)["items"]:
        demo.call("PATCH", "scheduler", f"/nodes/{node['name']}", headers=demo.admin, json={"status": "Active"})


def _restart_gateway_when_asked(stack, browser: subprocess.Popen, timeout: float = 240) -> None:
    """The browser script's lost-connection step: when it asks, kill the gateway (a crash: every open
    stream breaks at once), start it again and tell the script; its EventSource must come back by itself."""
    deadline = time.monotonic() + timeout
    while not (ARTIFACTS / "outage.request").exists():
        if browser.poll() is not None or time.monotonic() > deadline:
            return
        time.sleep(0.2)
    stack.stop("gateway", sig=signal.SIGKILL, grace=5)
    time.sleep(1.0)
    stack.start_service("gateway")
    while not stack.ready("gateway"):
        assert time.monotonic() < deadline, "the gateway did not come back:\n" + stack.tail("gateway")
        time.sleep(0.3)
    (ARTIFACTS / "outage.done").write_text("restarted")


@pytest.fixture(scope="module", autouse=True)
def fresh_artifacts() -> None:
    """Screenshots are this run's only: the ones of an earlier run go first."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in ARTIFACTS.glob("*.png"):
        stale.unlink()


def run_browser_script(script: str, stack, env: dict[str, str], *, timeout: float = 300,
                       while_running=None) -> str:
    """Runs console/e2e/<script> (playwright-core in Debian's Chromium) against the stack's gateway and
    answers its output; fails with the last lines and where the screenshots are when a step failed.
    `while_running(stack, browser)` serves the script while it runs (e.g. an outage it asks for)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "GATEWAY_URL": stack.gateway_url, "ADMIN_PASSWORD": stack.admin_password(),
                "ARTIFACTS_DIR": str(ARTIFACTS), "CHROMIUM": CHROMIUM, **env}
    browser = subprocess.Popen(["node", f"e2e/{script}"], cwd=CONSOLE, env=full_env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        if while_running is not None:
            while_running(stack, browser)
        out, _ = browser.communicate(timeout=timeout)
    finally:
        if browser.poll() is None:
            browser.kill()
    (ARTIFACTS / f"{Path(script).stem}.log").write_text(out)
    assert browser.returncode == 0, f"browser steps failed (screenshots in {ARTIFACTS}):\n{out[-6000:]}"
    assert out.rstrip().endswith(" 0 failed"), out[-2000:]
    return out


def test_the_console_in_a_real_browser(stack, built, ready_apps, nodes_restored):
    with urllib.request.urlopen(f"{stack.gateway_url}/queue", timeout=30) as served:  # the app, for its own route
        assert served.status == 200 and b'<div id="root">' in served.read(), "the gateway does not serve console/dist"
    for stale in (ARTIFACTS / "outage.request", ARTIFACTS / "outage.done"):
        stale.unlink(missing_ok=True)
    run_browser_script("console.e2e.mjs", stack, {"APP_ID": ready_apps[0], "SMALL_APP_ID": ready_apps[1]},
                       while_running=_restart_gateway_when_asked)
    for name in ("01-login", "04-approvals", "06-approval-loop-test-chart", "07-queue", "09-models", "12-viewer-approval"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 0


def test_model_versions_aliases_and_compare_in_a_real_browser(stack, built, ready_apps):
    """MD-03/05/06: two versions of the small App; an alias set, moved, rolled back (by an admin: the App is
    kim's); a researcher who does not own it refused; the versions compared."""
    run_browser_script("models.e2e.mjs", stack, {"SMALL_APP_ID": ready_apps[1]})
    for name in ("models-01-detail", "models-02-aliases", "models-03-compare", "models-04-refused"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 0


def test_runs_and_logs_in_a_real_browser(stack, built, demo):
    """SC-03/SC-05 and the queue's wait reasons: a probe -> data-loader chain's DAG changing state live, the
    probe's log tailed while it runs and read after it ends; a request waiting for V100s says why and when."""
    demo.library_components()  # the probe and data-loader are in the library
    run_browser_script("runs.e2e.mjs", stack, {})
    for name in ("runs-01-dag", "runs-02-logs", "queue-01-wait-reasons"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 0


def test_every_screen_has_no_serious_accessibility_violations(stack, built, ready_apps):
    """axe-core on every route as the admin sees it (the table of counts is in the artifacts' a11y.md)."""
    out = run_browser_script("a11y.e2e.mjs", stack, {})
    assert "| /queue |" in out and "| /admin |" in out


def test_the_resources_and_admin_screens_in_a_real_browser(stack, built, demo, nodes_restored):
    """RS-01…RS-06 and the admin area: the §7.2 table, a node drained and activated, the usage chart; a user
    created, re-roled, deactivated (their open session refused), a token shown once and revoked, the audit
    log filtered and exported as CSV, a threshold changed; a researcher and a viewer see why they cannot."""
    thresholds = demo.call("GET", "approval", "/thresholds", headers=demo.admin)
    try:
        run_browser_script("admin.e2e.mjs", stack, {})
    finally:  # the package's other tests share this stack's thresholds
        demo.call("PUT", "approval", "/thresholds", headers=demo.admin,
                  json={"gpu_count": thresholds["gpu_count"], "memory": thresholds["memory"]})
    for name in ("resources-01-table", "resources-02-chart", "admin-01-users", "admin-02-tokens", "admin-03-audit"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 0


def test_the_library_and_training_screens_in_a_real_browser(stack, built, ready_apps):
    """CL-01…CL-05 and TR-01…TR-08: a component registered (a refused memory value shown at its field),
    searched, edited into a new version with its history; another researcher sees edit disabled with the
    reason; a training submitted from /trainer/new (defaults from the App, the service's messages per field)
    lands on its detail; four finished trainings compared with their reward curves and metrics; a viewer
    changes nothing."""
    run_browser_script("library.e2e.mjs", stack, {"APP_ID": ready_apps[0], "SMALL_APP_ID": ready_apps[1],
                                                  "SAGA_TIMEOUT_MS": "240000"}, timeout=600)
    for name in ("library-01-list", "library-02-detail", "training-01-submit", "training-02-compare"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 0


def test_the_builder_in_a_real_browser(stack, built, demo):
    """BL-01…BL-12 on the canvas: seed 001's example App built by drags (the import, the four-component
    chain), a BL-09 refusal at the edge, the threshold badge following the side panel, tidy and undo as one
    step, Delete, an edit conflict between two windows, the workflow SVG and the spec JSON; a viewer changes
    nothing. Then the canvas benchmark (200 components, 300 edges), written to bench-console-canvas.json."""
    demo.library_components()  # the reference components are in the library
    run_browser_script("builder.e2e.mjs", stack, {}, timeout=900)
    for name in ("builder-01-apps", "builder-02-canvas", "builder-03-refusal", "builder-04-workflow",
                 "builder-05-conflict", "builder-06-viewer"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 0
    figures = json.loads((ARTIFACTS / "bench-console-canvas.json").read_text())
    assert figures["components"] == 200 and figures["edges"] == 300 and figures["layout_ms"] < 1000, figures


def test_single_sign_on_in_a_real_browser(stack, built):
    """AU-03 through the console: the gateway restarted with a real OIDC provider (oidc-provider-mock)
    configured; the browser logs in there and comes back with its group's role; then the gateway goes back."""
    sub = f"sso-{os.getpid()}-{int(time.time())}"
    with running_oidc_provider() as provider:
        provider.set_user(sub, name="SSO E2E", email=f"{sub}@example.com", groups=["avatar-researchers"])
        _restart_gateway(stack, {
            "AVATAR_OIDC_ISSUER": provider.issuer, "AVATAR_OIDC_CLIENT_ID": "avatar-console",
            "AVATAR_OIDC_CLIENT_SECRET": "console-e2e-secret", "AVATAR_OIDC_DISPLAY_NAME": "Example SSO",
            "AVATAR_OIDC_ROLE_MAP": json.dumps({"avatar-researchers": "researcher"})})
        try:
            run_browser_script("sso.e2e.mjs", stack, {"OIDC_SUB": sub})
        finally:
            _restart_gateway(stack, {})
    assert (ARTIFACTS / "sso-02-logged-in.png").stat().st_size > 0


def _restart_gateway(stack, env: dict[str, str], timeout: float = 60) -> None:
    stack.stop("gateway")
    stack.service_env["gateway"] = env
    stack.start_service("gateway")
    deadline = time.monotonic() + timeout
    while not stack.ready("gateway"):
        assert time.monotonic() < deadline, "the gateway did not come back:\n" + stack.tail("gateway")
        time.sleep(0.3)
