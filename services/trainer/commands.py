"""What the trainer is asked to do: submit a training request, ask to cancel one."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from contracts.workload import Priority, RequestedResources
from services.kit.messagebus import Command
from services.trainer.domain import new_workload_id


@dataclass(frozen=True)
class SubmitTrainingRequest(Command):
    """Train a ready App (its latest spec version unless one is named). What the submission leaves out
    comes from the App: its largest component's resources and its own training config."""

    app_id: str
    requester: str
    spec_version: str | None = None
    name: str = ""
    resources: RequestedResources | None = None
    training_config: Mapping[str, Any] = field(default_factory=dict)  # only the fields the submission gives
    simulation_seed: int | None = None
    env_vars: Mapping[str, Any] = field(default_factory=dict)  # name -> value or EnvVarInput (kit/secrets.py)
    priority: Priority = "normal"
    is_training_request: bool = True
    test_run_ref: str | None = None
    # made with the command, so the request's span can carry it before the request is stored
    workload_id: str = field(default_factory=new_workload_id)


@dataclass(frozen=True)
class CancelTrainingRequest(Command):
    """Ask to cancel a request that has not ended: its requester or an admin may."""

    workload_id: str
    requested_by: str
    by_admin: bool = False
    role: str | None = None  # the person's role, for the audit record
