"""An in-test Kubernetes API server: the Pod / Node / log / watch subset the runner uses.

Driven by the real kubernetes_asyncio client (Configuration().host = server.url). The test
plays kubelet through set_phase() and append_log().
"""
from __future__ import annotations

import asyncio
import copy
import json
import socket
import uuid

from aiohttp import web


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code}, status=code)


def _matches(pod: dict, label_selector: str | None, field_selector: str | None) -> bool:
    labels = pod["metadata"].get("labels") or {}
    for term in filter(None, (label_selector or "").split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    for term in filter(None, (field_selector or "").split(",")):
        key, _, value = term.partition("=")
        if key == "metadata.name" and pod["metadata"]["name"] != value:
            return False
        if key == "metadata.namespace" and pod["metadata"]["namespace"] != value:
            return False
    return True


class FakeKubeApi:
    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict] = {}
        self.secrets: dict[tuple[str, str], dict] = {}
        self.nodes: list[dict] = []
        self.logs: dict[tuple[str, str], list[str]] = {}
        self.events: list[tuple[int, str, dict]] = []  # (resourceVersion, type, object)
        self.requests: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, int | None]] = []
        self._version = 100
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # ---------------------------------------------------------------- test controls
    async def _emit(self, kind: str, pod: dict) -> None:
        self._version += 1
        pod["metadata"]["resourceVersion"] = str(self._version)
        self.events.append((self._version, kind, copy.deepcopy(pod)))
        async with self._changed:
            self._changed.notify_all()

    async def set_phase(self, name: str, phase: str, *, exit_code: int | None = None, reason: str | None = None,
                        namespace: str = "avatar") -> None:
        pod = self.pods[(namespace, name)]
        pod["status"]["phase"] = phase
        if phase == "Running":
            pod["status"]["containerStatuses"] = [{"name": "component", "ready": True, "restartCount": 0,
                                                   "image": "x", "imageID": "", "state": {"running": {}}}]
        if exit_code is not None:
            pod["status"]["containerStatuses"] = [{
                "name": "component", "ready": False, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"terminated": {"exitCode": exit_code, "reason": reason or "Completed"}}}]
        await self._emit("MODIFIED", pod)

    async def append_log(self, name: str, line: str, namespace: str = "avatar") -> None:
        self.logs.setdefault((namespace, name), []).append(line)
        async with self._changed:
            self._changed.notify_all()

    # ---------------------------------------------------------------- handlers
    async def list_nodes(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                                  "items": self.nodes})

    async def create_pod(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        body = await request.json()
        name = body["metadata"]["name"]
        if (ns, name) in self.pods:
            return _status(409, "AlreadyExists", f'pods "{name}" already exists')
        body["metadata"].update({"namespace": ns, "uid": str(uuid.uuid4()),
                                 "creationTimestamp": "2026-01-01T00:00:00Z"})
        body["status"] = {"phase": "Pending"}
        self.pods[(ns, name)] = body
        await self._emit("ADDED", body)
        return web.json_response(body, status=201)

    async def create_secret(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        body = await request.json()
        name = body["metadata"]["name"]
        if (ns, name) in self.secrets:
            return _status(409, "AlreadyExists", f'secrets "{name}" already exists')
        body["metadata"].update({"namespace": ns, "uid": str(uuid.uuid4())})
        self.secrets[(ns, name)] = body
        return web.json_response(body, status=201)

    async def replace_secret(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.secrets:
            return _status(404, "NotFound", f'secrets "{key[1]}" not found')
        self.secrets[key] = await request.json()
        return web.json_response(self.secrets[key])

    async def patch_secret(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.secrets:
            return _status(404, "NotFound", f'secrets "{key[1]}" not found')
        patch = await request.json()
        self.secrets[key]["metadata"].update(patch.get("metadata") or {})
        return web.json_response(self.secrets[key])

    async def delete_secret(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        secret = self.secrets.pop(key, None)
        if secret is None:
            return _status(404, "NotFound", f'secrets "{key[1]}" not found')
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"})

    async def get_pod(self, request: web.Request) -> web.Response:
        pod = self.pods.get((request.match_info["ns"], request.match_info["name"]))
        if pod is None:
            return _status(404, "NotFound", f'pods "{request.match_info["name"]}" not found')
        return web.json_response(pod)

    async def delete_pod(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        pod = self.pods.pop(key, None)
        if pod is None:
            return _status(404, "NotFound", f'pods "{key[1]}" not found')
        grace = request.query.get("gracePeriodSeconds")
        self.deleted.append((key[1], int(grace) if grace is not None else None))
        await self._emit("DELETED", pod)
        return web.json_response(pod)

    async def list_pods(self, request: web.Request) -> web.StreamResponse:
        ns = request.match_info["ns"]
        labels, fields = request.query.get("labelSelector"), request.query.get("fieldSelector")
        if request.query.get("watch", "").lower() in ("true", "1"):
            return await self._watch(request, ns, labels, fields)
        items = [p for (pns, _), p in self.pods.items() if pns == ns and _matches(p, labels, fields)]
        return web.json_response({"kind": "PodList", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": str(self._version)}, "items": items})

    async def _watch(self, request: web.Request, ns: str, labels: str | None, fields: str | None) -> web.StreamResponse:
        self.requests.append(("watch", request.query_string))
        since = int(request.query.get("resourceVersion") or 0)
        timeout = float(request.query.get("timeoutSeconds") or 30)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        sent = since
        while True:
            for version, kind, obj in list(self.events):
                if version > sent and obj["metadata"]["namespace"] == ns and _matches(obj, labels, fields):
                    await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                sent = max(sent, version)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except asyncio.TimeoutError:
                    pass
        await response.write_eof()
        return response

    async def pod_log(self, request: web.Request) -> web.StreamResponse:
        key = (request.match_info["ns"], request.match_info["name"])
        pod = self.pods.get(key)
        if pod is None:
            return _status(404, "NotFound", f'pods "{key[1]}" not found')
        if pod["status"]["phase"] == "Pending":
            return _status(400, "BadRequest", f'container "component" in pod "{key[1]}" is waiting to start')
        follow = request.query.get("follow", "").lower() in ("true", "1")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent = 0
        while True:
            lines = self.logs.get(key, [])
            for line in lines[sent:]:
                await response.write(line.encode() + b"\n")
            sent = len(lines)
            current = self.pods.get(key)
            if not follow or current is None or current["status"]["phase"] in ("Succeeded", "Failed"):
                break
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), 0.5)
                except asyncio.TimeoutError:
                    pass
        await response.write_eof()
        return response

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/v1/nodes", self.list_nodes)
        app.router.add_post("/api/v1/namespaces/{ns}/pods", self.create_pod)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self.list_pods)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", self.get_pod)
        app.router.add_delete("/api/v1/namespaces/{ns}/pods/{name}", self.delete_pod)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", self.pod_log)
        app.router.add_post("/api/v1/namespaces/{ns}/secrets", self.create_secret)
        app.router.add_put("/api/v1/namespaces/{ns}/secrets/{name}", self.replace_secret)
        app.router.add_patch("/api/v1/namespaces/{ns}/secrets/{name}", self.patch_secret)
        app.router.add_delete("/api/v1/namespaces/{ns}/secrets/{name}", self.delete_secret)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
