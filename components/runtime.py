"""The runtime every reference component shares: env contract, storage, metrics, progress.

A component is `run_component(body)`: the runtime reads the AVATAR_* environment (see
components/README.md), hands `body` a `Context`, writes the metrics dict `body` returns as
`metrics.json` under the output prefix, and exits 0. Bad input (`InputError`) prints one
`error: ...` line to stderr and exits 2; a storage failure exits 1.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_TERMINATED = 128 + signal.SIGTERM

METRICS_FILE = "metrics.json"

TRAINING_DEFAULTS: dict[str, Any] = {
    "episodes": 1000,
    "learning_rate": 0.001,
    "batch_size": 64,
    "gamma": 0.99,
    "max_steps_per_episode": 500,
    "env_config": {},
    "reward_params": {},
}
# Component params that stand in for a training_config key the training config lacks.
PARAM_FALLBACKS = {
    "episodes": ("episodes",),
    "learning_rate": ("learning_rate", "lr"),
    "batch_size": ("batch_size",),
    "gamma": ("gamma",),
    "max_steps_per_episode": ("max_steps_per_episode", "max_steps"),
}


class InputError(ValueError):
    """Invalid input from the caller: reported as one `error:` line, exit code 2."""


class StorageError(RuntimeError):
    """Reading or writing the artifact store failed: exit code 1."""


# ---------------------------------------------------------------- validation helpers

def number(section: str, key: str, value: Any, *, minimum: float | None = None,
           maximum: float | None = None, above: float | None = None,
           integer: bool = False) -> float | int:
    """`value` as a finite number within bounds, else InputError naming `section.key`."""
    name = f"{section}.{key}" if section else key
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{name} must be finite, got {value!r}")
    if integer:
        if value != int(value):
            raise InputError(f"{name} must be an integer, got {value!r}")
        value = int(value)
    if above is not None and not value > above:
        raise InputError(f"{name} must be > {above}, got {value!r}")
    if minimum is not None and value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise InputError(f"{name} must be <= {maximum}, got {value!r}")
    return value if integer else float(value)


def param(params: Mapping[str, Any], key: str, default: float | int, **bounds: Any) -> float | int:
    """A numeric component param (`params.<key>`) with its default and bounds."""
    return number("params", key, params.get(key, default), **bounds)


def json_object(name: str, text: str | None, default: Any) -> Any:
    if text is None or not text.strip():
        return default
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name} is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(value, type(default)):
        kind = "object" if isinstance(default, dict) else "list"
        raise InputError(f"{name} must be a JSON {kind}, got {text.strip()[:80]}")
    return value


def training_config(raw: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The effective training config: AVATAR_TRAINING_CONFIG wins, params are a fallback,
    TRAINING_DEFAULTS fill the rest; every value is checked."""
    merged: dict[str, Any] = {}
    for key, default in TRAINING_DEFAULTS.items():
        if key in raw:
            merged[key] = raw[key]
        else:
            fallback = next((p for p in PARAM_FALLBACKS.get(key, ()) if p in params), None)
            merged[key] = params[fallback] if fallback else default
    sec = "training_config"
    merged["episodes"] = number(sec, "episodes", merged["episodes"], minimum=1, maximum=1_000_000, integer=True)
    merged["learning_rate"] = number(sec, "learning_rate", merged["learning_rate"], above=0, maximum=10)
    merged["batch_size"] = number(sec, "batch_size", merged["batch_size"], minimum=1, maximum=1_000_000, integer=True)
    merged["gamma"] = number(sec, "gamma", merged["gamma"], minimum=0, maximum=1)
    merged["max_steps_per_episode"] = number(sec, "max_steps_per_episode", merged["max_steps_per_episode"],
                                             minimum=1, maximum=1_000_000, integer=True)
    for key in ("env_config", "reward_params"):
        if not isinstance(merged[key], dict):
            raise InputError(f"{sec}.{key} must be a JSON object, got {merged[key]!r}")
    return merged


# ---------------------------------------------------------------- storage

@dataclass(frozen=True)
class Location:
    """A prefix in S3 (`s3://bucket/prefix/`) or a local directory."""

    scheme: str  # "s3" | "file"
    root: str    # bucket for s3, absolute directory for file
    prefix: str = ""  # s3 key prefix, "" or ending with "/"

    @classmethod
    def parse(cls, text: str, what: str = "location") -> "Location":
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{what} must be a non-empty string, got {text!r}")
        text = text.strip()
        if text.startswith("s3://"):
            parsed = urlparse(text)
            if not parsed.netloc:
                raise InputError(f"{what} {text!r} has no bucket")
            prefix = parsed.path.lstrip("/")
            if prefix and not prefix.endswith("/"):
                prefix += "/"
            return cls("s3", parsed.netloc, prefix)
        if text.startswith("file://"):
            text = urlparse(text).path
        elif "://" in text:
            raise InputError(f"{what} {text!r}: only s3://, file:// and plain paths are supported")
        return cls("file", str(Path(text).resolve()))

    def __str__(self) -> str:
        if self.scheme == "s3":
            return f"s3://{self.root}/{self.prefix}"
        return f"file://{self.root}/"

    def uri(self, name: str) -> str:
        return f"{self}{name}"


def split_uri(uri: str) -> tuple[Location, str]:
    """`s3://b/p/x.npz` -> (Location(s3://b/p/), "x.npz")."""
    head, _, name = uri.rstrip().rpartition("/")
    if not name:
        raise InputError(f"{uri!r} does not name an object")
    return Location.parse(head + "/", "object uri"), name


class Storage:
    """Whole-object reads and writes under a Location: S3 through the minio SDK, or a directory."""

    def __init__(self, endpoint: str | None, access_key: str | None, secret_key: str | None):
        self._endpoint, self._access_key, self._secret_key = endpoint, access_key, secret_key
        self._client = None

    def _s3(self):
        if self._client is None:
            if not self._endpoint:
                raise InputError("an s3:// location needs AVATAR_S3_ENDPOINT")
            from minio import Minio

            url = urlparse(self._endpoint if "://" in self._endpoint else f"http://{self._endpoint}")
            if not url.netloc:
                raise InputError(f"AVATAR_S3_ENDPOINT {self._endpoint!r} is not a URL like http://host:9000")
            self._client = Minio(url.netloc, access_key=self._access_key or None,
                                 secret_key=self._secret_key or None, secure=url.scheme == "https")
        return self._client

    def put(self, where: Location, name: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        try:
            if where.scheme == "s3":
                self._s3().put_object(where.root, where.prefix + name, io.BytesIO(data), len(data),
                                      content_type=content_type)
            else:
                path = Path(where.root, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.tmp")
                tmp.write_bytes(data)
                tmp.replace(path)
        except InputError:
            raise
        except Exception as exc:  # minio S3Error, urllib3 errors, OSError
            raise StorageError(f"cannot write {where.uri(name)}: {exc}") from exc
        return where.uri(name)

    def get(self, where: Location, name: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        try:
            if where.scheme == "file":
                path = Path(where.root, name)
                return path.read_bytes() if path.is_file() else None
            from minio.error import S3Error

            try:
                response = self._s3().get_object(where.root, where.prefix + name)
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject"):
                    return None
                raise
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()
        except InputError:
            raise
        except Exception as exc:
            raise StorageError(f"cannot read {where.uri(name)}: {exc}") from exc


# ---------------------------------------------------------------- context

@dataclass
class Context:
    workload_id: str
    component_id: str
    component_name: str
    task_id: str
    params: dict[str, Any]
    training: dict[str, Any]
    inputs: list[Location]
    output: Location
    storage: Storage

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Context":
        params = json_object("AVATAR_PARAMS", env.get("AVATAR_PARAMS"), {})
        raw_training = json_object("AVATAR_TRAINING_CONFIG", env.get("AVATAR_TRAINING_CONFIG"), {})
        inputs = json_object("AVATAR_INPUT_PREFIXES", env.get("AVATAR_INPUT_PREFIXES"), [])
        output = env.get("AVATAR_OUTPUT_PREFIX")
        if not output:
            raise InputError("AVATAR_OUTPUT_PREFIX is not set")
        return cls(
            workload_id=env.get("AVATAR_WORKLOAD_ID", ""),
            component_id=env.get("AVATAR_COMPONENT_ID", ""),
            component_name=env.get("AVATAR_COMPONENT_NAME", ""),
            task_id=env.get("AVATAR_TASK_ID", ""),
            params=params,
            training=training_config(raw_training, params),
            inputs=[Location.parse(p, "AVATAR_INPUT_PREFIXES entry") for p in inputs],
            output=Location.parse(output, "AVATAR_OUTPUT_PREFIX"),
            storage=Storage(env.get("AVATAR_S3_ENDPOINT"), env.get("AVATAR_S3_ACCESS_KEY"),
                            env.get("AVATAR_S3_SECRET_KEY")),
        )

    def identity(self) -> dict[str, str]:
        return {"workload_id": self.workload_id, "component_id": self.component_id,
                "component_name": self.component_name, "task_id": self.task_id}

    # -- output
    def write_bytes(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        uri = self.storage.put(self.output, name, data, content_type)
        progress(f"wrote {uri} ({len(data)} bytes)")
        return uri

    def write_json(self, name: str, obj: Any) -> str:
        return self.write_bytes(name, dumps(obj).encode(), "application/json")

    def write_npz(self, name: str, **arrays: Any) -> tuple[str, str]:
        """Writes a compressed .npz; returns (uri, sha256 hex of its bytes)."""
        data = npz_bytes(**arrays)
        return self.write_bytes(name, data), hashlib.sha256(data).hexdigest()

    def write_metrics(self, metrics: Mapping[str, Any]) -> str:
        return self.write_json(METRICS_FILE, dict(metrics))

    # -- input
    def find_input(self, name: str) -> tuple[str, bytes] | None:
        """(uri, bytes) of `name` in the first input prefix that has it, else None."""
        for where in self.inputs:
            data = self.storage.get(where, name)
            if data is not None:
                return where.uri(name), data
        return None

    def read_uri(self, uri: str) -> bytes | None:
        where, name = split_uri(uri)
        return self.storage.get(where, name)


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, allow_nan=False)


def loads(uri: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{uri} is not valid JSON: {exc}") from None


def npz_bytes(**arrays: Any) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def load_npz(uri: str, data: bytes) -> dict[str, Any]:
    import numpy as np

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except Exception as exc:
        raise InputError(f"{uri} is not a readable .npz archive: {exc}") from None


def progress(message: str) -> None:
    print(message, flush=True)


def _terminate(signum: int, frame: Any) -> None:
    # A container's PID 1 ignores SIGTERM unless it installs a handler. Exit at once with
    # os._exit: an exception raised from a handler can be swallowed by C extension code
    # (seen inside numpy's lazy import). Progress lines are already flushed; artifact
    # writes are whole-object, so nothing half-written is left behind.
    os.write(2, b"error: terminated by SIGTERM\n")
    os._exit(EXIT_TERMINATED)


def run_component(body: Callable[[Context], Mapping[str, Any] | None],
                  env: Mapping[str, str] | None = None) -> None:
    """Run `body` under the contract and exit the process with the contract's exit code."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        ctx = Context.from_env(os.environ if env is None else env)
        who = " ".join(f"{k}={v}" for k, v in ctx.identity().items() if v)
        progress(f"start {who or 'component'}: inputs={[str(i) for i in ctx.inputs]} output={ctx.output}")
        metrics = body(ctx)
        if metrics is not None:
            ctx.write_metrics(metrics)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_BAD_INPUT)
    except StorageError as exc:
        print(f"error: storage: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FAILED)
    sys.stdout.flush()
    sys.exit(EXIT_OK)
