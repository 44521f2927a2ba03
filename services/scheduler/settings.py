"""Settings of the scheduler service (env AVATAR_SCHEDULER_*), on top of the platform's."""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field

from services.kit.settings import Settings
from services.scheduler.core.inventory import DEFAULT_NODES_FILE


class SchedulerSettings(Settings):
    # AVATAR_SCHEDULER_RUNNER: "local" runs each component's library `command` as a subprocess;
    # "kubernetes" runs one Pod per component (in-cluster config, else ~/.kube/config)
    scheduler_runner: Literal["local", "kubernetes"] = "local"
    # local mode's node inventory (YAML/JSON); Kubernetes mode reads Node objects instead
    scheduler_nodes_file: Path = DEFAULT_NODES_FILE
    # Kubernetes API access: this kubeconfig file, else the in-cluster service account, else ~/.kube/config
    scheduler_k8s_kubeconfig: Path | None = None
    scheduler_k8s_namespace: str = "avatar"
    scheduler_k8s_s3_secret: str = "avatar-s3"  # Secret with the components' S3 credentials
    # where the services that store secret env vars answer the runner's resolve calls (services/scheduler/secrets.py)
    builder_url: str = "http://127.0.0.1:8001"
    trainer_url: str = "http://127.0.0.1:8003"
    scheduler_secrets_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    scheduler_k8s_inventory_seconds: float = Field(default=30.0, gt=0)
    # an allocation lives this long without renewal; the reconciler renews live runs' leases
    scheduler_lease_seconds: float = Field(default=30.0, ge=2)
    scheduler_reconcile_seconds: float = Field(default=5.0, gt=0)
    # the leader's lease (services/scheduler/leader.py): a leader cut off from PostgreSQL leads on, its
    # runs going, this long before a standby may take over; longer than a typical database failover
    scheduler_leader_grace_seconds: float = Field(default=30.0, ge=1)
    # how often the leader renews it (at most a third of the grace)
    scheduler_leader_renew_seconds: float = Field(default=5.0, gt=0)
    # a run whose process or node died without an exit status (lost) runs again at most this many times;
    # then it fails, with the reasons of its deaths
    scheduler_max_reruns: int = Field(default=3, ge=0)
    # a run's metrics and log reach S3 through a blip this long (retried with backoff) before its end
    # is recorded without them
    scheduler_s3_retry_seconds: float = Field(default=60.0, ge=0)
    # how often the allocation audit compares Redis, PostgreSQL and the runner (engine/audit.py)
    scheduler_audit_seconds: float = Field(default=30.0, gt=0)
    # the scheduling loop also runs this often without being woken
    scheduler_tick_seconds: float = Field(default=2.0, gt=0)
    # and at most this often however often it is woken: under load the wakes of many approvals and run
    # ends share one round (each round reads every live job) instead of a round each; an idle scheduler
    # answers a lone wake at once (bench/RESULTS.md, "a floor under the scheduling round")
    scheduler_min_round_seconds: float = Field(default=0.1, ge=0, le=5)
    # the spec has no per-component CPU: the request's cpu when given, else this many cores
    scheduler_component_cpu: float = Field(default=1.0, gt=0, le=1024)
    # how long a stopped component gets between SIGTERM (pod delete) and SIGKILL
    scheduler_stop_grace_seconds: float = Field(default=5.0, ge=0)
    # local runner: components run at this nice value (0-19), so that many of them running at once on
    # the services' own machine slow themselves down, not the API, the saga and the scheduling loop
    scheduler_local_nice: int = Field(default=10, ge=0, le=19)
    # plain asyncio: under uvloop each local component's spawn forks the whole scheduler (libuv), many
    # times the CPU of asyncio's spawn (figures: bench/RESULTS.md)
    event_loop: Literal["auto", "asyncio", "uvloop"] = "asyncio"
    # local runner state (each run's output and metadata, so a restarted scheduler can find and
    # stop what the previous one started) and the log spool; default: <tmp>/avatar-scheduler/<runner id>
    scheduler_state_dir: Path | None = None
    scheduler_log_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # how many lines of a running component's log stay in Redis for live reading
    scheduler_live_log_lines: int = Field(default=5000, ge=10)
    # how many workloads one scheduling round starts at once: a start is a dozen round trips and a process
    # (or pod) creation, so one after the other the round's length, not the cluster, would bound the start rate
    scheduler_start_concurrency: int = Field(default=8, ge=1, le=64)
    # the policy examines at most this many components after the blocked head (bf_max_job_test)
    scheduler_backfill_candidates: int = Field(default=1000, ge=1)
    # the usage history (RS-06, engine/history.py): the leader samples the cluster's figures this often and
    # keeps them this long
    scheduler_history_seconds: float = Field(default=30.0, ge=0.2, le=3600)
    scheduler_history_retention_days: float = Field(default=14.0, gt=0, le=3660)

    @property
    def runner_id(self) -> str:
        """Tags this scheduler's local runs; stable across restarts of the same deployment."""
        digest = hashlib.sha1(f"{self.postgres_url}|{self.redis_prefix}".encode()).hexdigest()[:10]
        return f"sched-{digest}"

    @property
    def state_dir(self) -> Path:
        return self.scheduler_state_dir or Path(tempfile.gettempdir()) / "avatar-scheduler" / self.runner_id

    @property
    def sched_prefix(self) -> str:
        # the {sched} hash tag keeps every scheduler key in one Redis Cluster slot (the Lua
        # scripts build key names from the prefix)
        return f"{self.redis_prefix}{{sched}}:"

