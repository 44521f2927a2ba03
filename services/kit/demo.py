"""The platform's main job, end to end, against the running stack (`make demo` runs `make up` first).

Builds the example App of docs/spec.md §2.2 through the builder API from the library's components (two Tasks,
one imported from another App), submits a training request whose largest component needs 4 GPUs,
runs the loop test, approves it as an admin, waits for queue → allocation → run → model stored,
downloads the model and checks every file's sha256, prints the saga timeline; then submits a small
request below the threshold and shows it approved automatically. Exits non-zero naming the failed step.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import secrets
import sys
import tarfile
import time
from typing import Any, Callable

import httpx

from services.kit.auth import mint_token
from services.kit.settings import DEFAULT_PORTS, Settings
from services.kit.stack import GATEWAY, SERVICES, Stack

EXAMPLE_COMPONENTS = ("env-simulator", "rl-agent", "reward-calc", "param-optimizer")
TERMINAL = {"model stored", "failed", "rejected", "cancelled"}  # "completed" still waits for the model


class StepFailed(Exception):
    pass


class Demo:
    def __init__(self, base: dict[str, str], settings: Settings, *, timeout: float, episodes: int,
                 identities: tuple[dict[str, str], dict[str, str]] | None = None) -> None:
        """`base`: each service's URL; `identities`: the admin's and the researcher's headers (default:
        tokens minted locally for `admin` and `kim`)."""
        self.base = base
        self.timeout = timeout
        self.episodes = episodes
        self.admin, self.researcher = identities or (
            {"Authorization": f"Bearer {mint_token(settings, 'admin', 'admin')}"},
            {"Authorization": f"Bearer {mint_token(settings, 'kim', 'researcher')}"})
        self.secret_value = "demo-" + secrets.token_urlsafe(16)  # the demo App's secret env var's value
        self.http = httpx.Client(timeout=30)
        self.step_no = 0
        self.started = time.monotonic()

    # --- plumbing -------------------------------------------------------------------------------
    def step(self, title: str, action: Callable[[], Any]) -> Any:
        self.step_no += 1
        print(f"[{self.step_no:>2}] {title} ...", flush=True)
        began = time.monotonic()
        try:
            result = action()
        except StepFailed as failure:
            raise StepFailed(f"step {self.step_no} ({title}) failed: {failure}") from None
        except httpx.HTTPError as error:
            raise StepFailed(f"step {self.step_no} ({title}) failed: {error!r}") from None
        print(f"     ok ({time.monotonic() - began:.1f}s)", flush=True)
        return result

    def call(self, method: str, service: str, path: str, *, headers: dict | None = None, expect: int | tuple = (200,),
             **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.base[service]}{path}", headers=headers or self.researcher,
                                     **kwargs)
        expected = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in expected:
            raise StepFailed(f"{method} {service}{path} answered {response.status_code}: {response.text[:500]}")
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response

    def wait(self, what: str, probe: Callable[[], Any], timeout: float | None = None) -> Any:
        deadline = time.monotonic() + (timeout or self.timeout)
        spinner = "|/-\\"
        tick = 0
        while True:
            value = probe()
            if value:
                if sys.stdout.isatty():
                    sys.stdout.write("\r" + " " * 100 + "\r")
                return value
            if time.monotonic() > deadline:
                raise StepFailed(f"timed out waiting for {what}")
            if sys.stdout.isatty():
                sys.stdout.write(f"\r     {spinner[tick % 4]} waiting for {what} ({time.monotonic() - self.started:.0f}s)")
                sys.stdout.flush()
            tick += 1
            time.sleep(0.5)

    # --- the story ------------------------------------------------------------------------------
    def library_components(self) -> dict[str, dict]:
        wanted = (*EXAMPLE_COMPONENTS, "data-loader", "probe")

        def seeded() -> dict[str, dict] | None:
            found = {}
            for name in wanted:  # by name: a busy library has more than one page of components
                page = self.call("GET", "library", "/components", params={"q": name, "page_size": 100})
                found.update({item["name"]: item for item in page["items"] if item["name"] == name})
            return found if set(wanted) <= set(found) else None

        return self.wait("the library to seed the reference components", seeded, 60)

    def build_app(self, name: str, tasks: list[tuple[str, list[str | tuple[str, dict]]]], components: dict[str, dict], *,
                  training_config: dict | None = None, imports: tuple[str, ...] = (),
                  secret_env: dict[str, str] | None = None) -> str:
        body: dict[str, Any] = {"name": name, "env_vars": {"NCCL_DEBUG": "INFO", "CUDA_VISIBLE_DEVICES": "all",
                                                           **(secret_env or {})}}
        if training_config:
            body["training_config"] = training_config
        app = self.call("POST", "builder", "/apps", json=body, expect=201)
        app_id = app["app_id"]
        for task_name, members in tasks:
            task = self.call("POST", "builder", f"/apps/{app_id}/tasks", json={"name": task_name}, expect=201)
            placed = []
            for member in members:
                member, overrides = (member, {}) if isinstance(member, str) else member
                self.call("POST", "builder", f"/apps/{app_id}/tasks/{task['task_id']}/components",
                          json={"component_id": components[member]["component_id"], **overrides}, expect=201)
                placed.append(components[member]["component_id"])
            for upstream, downstream in zip(placed, placed[1:]):
                self.call("POST", "builder", f"/apps/{app_id}/tasks/{task['task_id']}/edges",
                          json={"from": upstream, "to": downstream}, expect=201)
        for app_ref in imports:
            self.call("POST", "builder", f"/apps/{app_id}/imports", json={"app_ref": app_ref}, expect=201)
        self.call("POST", "builder", f"/apps/{app_id}/spec", expect=201)
        return app_id

    def show_env(self, app_id: str) -> None:
        """BL-02: the App's env vars as everyone sees them; a secret is set / not set, never its value."""
        response = self.http.get(f"{self.base['builder']}/apps/{app_id}", headers=self.researcher)
        app = response.json()
        shown = [f"{name}={value}" for name, value in app["env_vars"].items()]
        shown += [f"{item['name']}=******** (secret, {'set' if item['set'] else 'not set'})"
                  for item in app["secret_env_vars"]]
        print(f"     env vars: {', '.join(shown)}")
        for where in (response.text, json.dumps(self.call("GET", "builder", f"/apps/{app_id}/spec"))):
            if self.secret_value in where:
                raise StepFailed(f"the builder shows the value of {app_id}'s secret env var")

    def ready_in_trainer(self, app_id: str) -> dict:
        return self.wait(f"{app_id} to be ready in the trainer", lambda: self._trainer_app(app_id), 30)

    def _trainer_app(self, app_id: str) -> dict | None:
        response = self.http.get(f"{self.base['trainer']}/apps/{app_id}", headers=self.researcher)
        return response.json() if response.status_code == 200 else None

    def submit(self, app_id: str, resources: dict, *, priority: str, episodes: int, name: str) -> str:
        body = {"app_id": app_id, "name": name, "priority": priority, "resources": resources,
                "training_config": {"episodes": episodes, "simulation_seed": 42}}
        return self.call("POST", "trainer", "/training-requests", json=body, expect=202)["workload_id"]

    def request(self, workload_id: str) -> dict:
        return self.call("GET", "trainer", f"/training-requests/{workload_id}")

    def approval(self, workload_id: str) -> dict | None:
        response = self.http.get(f"{self.base['approval']}/approvals/{workload_id}", headers=self.admin)
        return response.json() if response.status_code == 200 else None

    def wait_status(self, workload_id: str, statuses: set[str], what: str) -> dict:
        def reached() -> dict | None:
            detail = self.request(workload_id)
            if detail["status"] in statuses:
                return detail
            if detail["status"] in TERMINAL - statuses:
                raise StepFailed(f"{workload_id} ended {detail['status']}: {detail.get('outcome')}")
            return None

        return self.wait(what, reached)

    def verify_model(self, workload_id: str) -> dict:
        detail = self.request(workload_id)
        model_id = (detail.get("model") or {}).get("model_id")
        if not model_id:
            raise StepFailed(f"the trainer shows no stored model for {workload_id}: {detail.get('model')}")
        model = self.call("GET", "models", f"/models/{model_id}")
        archive = self.http.get(f"{self.base['models']}/models/{model_id}/download", headers=self.researcher)
        if archive.status_code != 200:
            raise StepFailed(f"download answered {archive.status_code}")
        expected = {item["path"]: item["sha256"] for item in model["files"]}
        seen = {}
        with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:*") as tar:
            for member in tar.getmembers():
                if member.isfile():
                    seen[member.name] = hashlib.sha256(tar.extractfile(member).read()).hexdigest()
        matched = {path: digest for path, digest in seen.items() if any(path.endswith(p) for p in expected)}
        if len(matched) != len(expected) or any(
                expected[next(p for p in expected if path.endswith(p))] != digest for path, digest in matched.items()):
            raise StepFailed(f"checksums differ: expected {expected}, downloaded {seen}")
        print(f"     model {model['name']} v{model['version']}: {len(expected)} files, "
              f"{model['size_bytes']} bytes, every sha256 verified", flush=True)
        return model

    def print_timeline(self, workload_id: str) -> None:
        detail = self.request(workload_id)
        timeline = detail.get("timeline") or []
        first = None
        print(f"\n  timeline of {workload_id} ({detail['name'] or detail['app_id']}): {detail['status_label']}")
        for item in timeline:
            at = item["at"]
            moment = time.mktime(time.strptime(at[:19], "%Y-%m-%dT%H:%M:%S")) + float("0." + (at[20:26] or "0"))
            first = first if first is not None else moment
            print(f"   +{moment - first:7.2f}s  {item['type']:<22} {item['producer']:<10} {item['summary']}")
        print()

    def run(self) -> None:
        components = self.step("library holds the reference components", self.library_components)
        source_app = self.step("build the App to import (PreProcessor-App: data-preprocessing ← data-loader)",
                               lambda: self.build_app("PreProcessor-App", [("data-preprocessing", ["data-loader"])],
                                                      components))
        app_id = self.step("build the spec's example App (RL-DesignOpt-v1: 4 components in a chain + the imported Task)",
                           lambda: self.build_app(
                               "RL-DesignOpt-v1", [("parameter-optimization", list(EXAMPLE_COMPONENTS))], components,
                               training_config={"episodes": self.episodes, "learning_rate": 0.001, "batch_size": 64,
                                                "gamma": 0.99, "max_steps_per_episode": 500,
                                                "reward_params": {"efficiency_weight": 0.6, "safety_weight": 0.4},
                                                "env_config": {"simulation_seed": 42, "max_temp": 850,
                                                               "min_pressure": 10}},
                               imports=(source_app,), secret_env={"WANDB_API_KEY": self.secret_value}))
        spec = self.call("GET", "builder", f"/apps/{app_id}/spec")
        print(f"     {app_id}: tasks {[t['name'] for t in spec['tasks']]}, imported {spec['imported_apps']}")
        self.step("its secret env var is stored encrypted and shown masked", lambda: self.show_env(app_id))
        self.step("the trainer lists the App as ready", lambda: self.ready_in_trainer(app_id))
        defaults = self.step("resource defaults come from the largest component",
                             lambda: self.call("GET", "trainer", f"/apps/{app_id}/resource-defaults"))
        print(f"     {defaults['gpu_type']} x {defaults['gpu_count']}, {defaults['memory']}, "
              f"max runtime {defaults['max_runtime']}")
        resources = {key: defaults[key] for key in ("gpu_type", "gpu_count", "memory", "max_runtime")}
        workload = self.step("submit the training request (4 GPUs: needs approval)",
                             lambda: self.submit(app_id, resources, priority="high", episodes=self.episodes,
                                                 name="RL-DesignOpt-v1 demo"))
        print(f"     workload {workload}")
        self.step("approval requires a loop test first", lambda: self._loop_test_pending(workload))
        self.step("approving before the test is refused (테스트 필요)", lambda: self.call(
            "POST", "approval", f"/approvals/{workload}/approve", headers=self.admin, expect=409))
        self.step("run the loop test as admin", lambda: self.call(
            "POST", "approval", f"/approvals/{workload}/loop-test", headers=self.admin, json={}, expect=202))
        test = self.step("the loop test passes", lambda: self.wait("the loop test", lambda: self._loop_test_done(workload)))
        results = test.get("results") or {}
        print(f"     convergence={results.get('convergence')} avgReward={results.get('avgReward')} "
              f"finalReward={results.get('finalReward')}")
        self.step("approve as admin", lambda: self.call(
            "POST", "approval", f"/approvals/{workload}/approve", headers=self.admin, json={}))
        self.step("queued, allocated and running", lambda: self.wait_status(
            workload, {"running", "completed", "model stored"}, "the run to start"))
        self.step("every component completes and the model is stored", lambda: self.wait_status(
            workload, {"model stored"}, "the model to be stored"))
        self.step("download the model and check its checksums", lambda: self.verify_model(workload))
        self.print_timeline(workload)

        small_app = self.step("build a small App below the threshold (data-loader: 1 GPU, 32GB)",
                              lambda: self.build_app("DataPrep-Batch", [("prep", ["data-loader"])], components))
        self.step("the trainer lists it as ready", lambda: self.ready_in_trainer(small_app))
        small = self.step("submit it", lambda: self.submit(
            small_app, {"gpu_type": "V100", "gpu_count": 1, "memory": "32GB", "max_runtime": "10m"},
            priority="normal", episodes=10, name="DataPrep-Batch demo"))
        self.step("approved automatically, run, model stored", lambda: self.wait_status(
            small, {"model stored"}, "the small request to finish"))
        approval = self.approval(small)
        if not approval or not approval.get("auto_approved"):
            raise StepFailed(f"{small} was not approved automatically: {approval}")
        self.print_timeline(small)
        print(f"demo passed in {time.monotonic() - self.started:.0f}s")

    def _loop_test_pending(self, workload: str) -> dict:
        detail = self.wait("the approval request", lambda: self.approval(workload), 30)
        if not detail["needs_approval"] or (detail.get("loop_test") or {}).get("status") != "pending":
            raise StepFailed(f"expected approval with a pending loop test, got {detail}")
        print(f"     needs approval: {'; '.join(detail['reasons'])}")
        return detail

    def _loop_test_done(self, workload: str) -> dict | None:
        test = (self.approval(workload) or {}).get("loop_test") or {}
        if test.get("status") == "failed":
            raise StepFailed(f"the loop test failed: {test.get('results')}")
        return test if test.get("status") == "passed" else None


DEMO_USERS = (("kim", "Kim Researcher", "researcher"), ("park", "Park Viewer", "viewer"))


def log_in(http: httpx.Client, gateway: str, user: str, password: str) -> str:
    """A browser-style login at the gateway: the session cookie lands in `http`; returns the CSRF token."""
    response = http.post(f"{gateway}/api/auth/login", json={"user": user, "password": password})
    if response.status_code != 200:
        raise StepFailed(f"logging in as {user} answered {response.status_code}: {response.text[:300]}")
    return response.json()["csrf_token"]


def api_token(http: httpx.Client, gateway: str, csrf: str, name: str) -> dict[str, str]:
    """A personal API token of the logged-in user (shown once), as the header a script sends."""
    response = http.post(f"{gateway}/api/tokens", json={"name": name, "expires_in_days": 1},
                         headers={"X-CSRF-Token": csrf})
    if response.status_code != 201:
        raise StepFailed(f"creating an API token answered {response.status_code}: {response.text[:300]}")
    return {"Authorization": f"Bearer {response.json()['token']}"}


def gateway_identities(gateway: str, admin_password: str, passwords: dict[str, str]) -> tuple[dict, dict]:
    """Log in as the first admin, create the demo users (once), log in as each and take an API token:
    the demo then acts as `admin` and `kim` exactly as an outside script would."""
    with httpx.Client(timeout=30) as admin:
        csrf = log_in(admin, gateway, "admin", admin_password)
        for user, name, role in DEMO_USERS:
            created = admin.post(f"{gateway}/api/users", headers={"X-CSRF-Token": csrf},
                                 json={"id": user, "display_name": name, "role": role, "kind": "person",
                                       "email": f"{user}@avatar.local", "password": passwords[user]})
            if created.status_code not in (201, 409):  # 409: made by an earlier demo
                raise StepFailed(f"creating the demo user {user} answered {created.status_code}: {created.text[:300]}")
        admin_headers = api_token(admin, gateway, csrf, "make demo")
    with httpx.Client(timeout=30) as kim:
        researcher_headers = api_token(kim, gateway, log_in(kim, gateway, "kim", passwords["kim"]), "make demo")
    return admin_headers, researcher_headers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for each saga step")
    parser.add_argument("--episodes", type=int, default=1000)
    args = parser.parse_args(argv)
    stack = Stack()
    gateway = f"http://{args.host}:{DEFAULT_PORTS[GATEWAY]}"
    passwords = demo_passwords(stack.run_dir / "demo-passwords.json")
    try:
        identities = gateway_identities(gateway, stack.admin_password(), passwords)
        demo = Demo({name: f"{gateway}/api/{name}" for name in SERVICES}, Settings(), timeout=args.timeout,
                    episodes=args.episodes, identities=identities)
        demo.run()
    except StepFailed as failure:
        print(f"\nDEMO FAILED: {failure}", file=sys.stderr)
        return 1
    print(f"\nthe platform is up: console and API at {gateway} (API docs {gateway}/api/docs)")
    print(f"  admin / {stack.admin_password()}")
    for user, _, role in DEMO_USERS:
        print(f"  {user} / {passwords[user]}  ({role})")
    print("  `make down` stops it")
    return 0


def demo_passwords(path) -> dict[str, str]:
    """The demo users' passwords: made once per run folder and kept there (mode 0600), printed at the end."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps({user: secrets.token_urlsafe(12) for user, _, _ in DEMO_USERS}))
    return json.loads(path.read_text())


if __name__ == "__main__":
    raise SystemExit(main())
