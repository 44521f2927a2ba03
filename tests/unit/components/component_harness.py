"""Helpers for the reference component tests: run one as a real subprocess; talk to S3."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def component_env(output: str, *, params: dict | None = None, training: dict | None = None,
                  inputs: list[str] | None = None, s3: "S3 | None" = None, name: str = "test") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATAR_")}
    env.update({
        "AVATAR_WORKLOAD_ID": "WL-TEST", "AVATAR_COMPONENT_ID": "CL-TEST", "AVATAR_COMPONENT_NAME": name,
        "AVATAR_TASK_ID": "TASK-001", "AVATAR_PARAMS": json.dumps(params or {}),
        "AVATAR_TRAINING_CONFIG": json.dumps(training or {}),
        "AVATAR_INPUT_PREFIXES": json.dumps(inputs or []), "AVATAR_OUTPUT_PREFIX": output,
    })
    if s3 is not None:
        env.update({"AVATAR_S3_ENDPOINT": s3.endpoint, "AVATAR_S3_ACCESS_KEY": s3.access_key,
                    "AVATAR_S3_SECRET_KEY": s3.secret_key})
    return env


def start(package: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", f"components.{package}"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(package: str, output: str, timeout: float = 60, **kwargs: Any) -> Run:
    proc = start(package, component_env(output, name=package, **kwargs))
    stdout, stderr = proc.communicate(timeout=timeout)
    return Run(proc.returncode, stdout, stderr)


@dataclass
class S3:
    endpoint: str
    access_key: str
    secret_key: str
    client: Any

    def new_bucket(self) -> str:
        bucket = f"avatar-{uuid.uuid4().hex[:12]}"
        self.client.make_bucket(bucket)
        return bucket

    def get_json(self, bucket: str, key: str) -> Any:
        response = self.client.get_object(bucket, key)
        try:
            return json.loads(response.read())
        finally:
            response.close()
            response.release_conn()

    def keys(self, bucket: str, prefix: str) -> set[str]:
        return {o.object_name for o in self.client.list_objects(bucket, prefix=prefix, recursive=True)}
