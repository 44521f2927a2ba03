"""`training.requested` from systems outside the platform: the trainer is the gate. Only a request for a
known App at a ready spec version, by a requester the platform knows, goes on to approval; any other is
refused with the reason on its timeline, and nothing runs."""
from __future__ import annotations

import contextlib

from cryptography.fernet import Fernet

from contracts.events import AppSpecCreated, make_event
from services.approval.main import create_app as create_approval
from services.approval.settings import ApprovalSettings
from services.kit.messaging import REASON_HEADER
from services.kit.settings import Settings
from services.trainer.main import create_app as create_trainer
from tests.integration.approval.saga import (approval_service, dead_letters, emit, publish, tapped,
                                             trainer_service)
from tests.support.infra import wait_until
from tests.support.services import running_service
from tests.integration.trainer.test_trainer_service import ready, request_status
from tests.unit.approval.factory import small_spec, workload


async def _app_ready(url: str, trainer, spec) -> None:
    """The builder's app.spec_created for `spec`, published from `url`, and the trainer offering it."""
    await emit(url, "app.spec_created", AppSpecCreated(app_id=spec.app_id, version=spec.version, spec=spec),
               producer="builder")
    await ready(trainer, spec.app_id, spec.version)


async def _request(url: str, outside, *, producer: str) -> None:
    """`outside` published as `training.requested` by `producer`, from `url`'s broker user."""
    await publish(url, "training.requested",
                  make_event("training.requested", outside, producer=producer, correlation_id=outside.workload_id))


async def test_an_outside_request_for_an_app_that_does_not_exist_is_refused_and_nothing_runs(fresh):
    ghost = workload(small_spec((1, "8GB"), app_id="APP-N0PE00"), workload_id="EXT-GH0S7001", requester="mes")
    async with trainer_service(fresh) as trainer, approval_service(fresh) as approval, \
            tapped(fresh.rabbitmq_url) as tap:
        await _request(fresh.rabbitmq_url, ghost, producer="mes")
        view = await request_status(trainer, ghost.workload_id, "refused")
        # nothing downstream ever acts on it
        assert await tap.settled_count("workload.approved", ghost.workload_id) == 0
        assert tap.of("approval.required", ghost.workload_id) == []
        unknown = await approval.client.get(f"/approvals/{ghost.workload_id}", headers=approval.headers("viewer"))
    assert unknown.status_code == 404
    assert view["outcome"] == view["timeline"][-1]["summary"]
    assert "app APP-N0PE00 is not a ready app" in view["outcome"]
    assert [entry["type"] for entry in view["timeline"]] == ["training.requested", "training.refused"]


async def test_a_valid_outside_request_runs_with_the_platforms_own_spec(fresh):
    spec = small_spec((1, "8GB"))
    outside = workload(spec, workload_id="EXT-600D0001", requester="mes")
    # the outside system's snapshot names an image of its own: what runs is the platform's spec
    tampered = outside.spec.model_copy(deep=True)
    tampered.tasks[0].components[0].image.registry = "evil.example/miner"
    outside = outside.model_copy(update={"spec": tampered})
    async with trainer_service(fresh) as trainer, approval_service(fresh), tapped(fresh.rabbitmq_url) as tap:
        await _app_ready(fresh.rabbitmq_url, trainer, spec)
        await _request(fresh.rabbitmq_url, outside, producer="mes")
        view = await request_status(trainer, outside.workload_id, "approved")
        approved = await tap.one("workload.approved", outside.workload_id)
    assert approved.data.workload.spec.tasks[0].components[0].image == spec.tasks[0].components[0].image
    assert [(e["type"], e["producer"]) for e in view["timeline"]] == [
        ("training.requested", "mes"), ("training.requested", "trainer"), ("workload.approved", "approval")]
    assert view["source"] == "mes"


# ---------------------------------------------------------------------- the real per-user path

@contextlib.asynccontextmanager
async def _platform_as_own_users(infra):
    """The trainer and approval outside AVATAR_ENV=local, each connected as its own RabbitMQ user with the
    permissions deploy/ gives it; the builder's user (to publish specs) and an outside system `mes`."""
    urls = infra.broker_users(services=("trainer", "approval", "builder"), outside=("mes",))
    common = {**infra.settings().model_dump(), "env": "dev", "jwt_secret": "a-test-only-jwt-secret-of-this-run-" + infra.run_id,
              "secrets_key": Fernet.generate_key().decode()}
    trainer = running_service(create_trainer, Settings(**{**common, "rabbitmq_url": urls["trainer"]}))
    approval = running_service(create_approval, ApprovalSettings(**{**common, "rabbitmq_url": urls["approval"]}))
    async with trainer as t, approval as a, tapped(infra.rabbitmq_url) as tap:
        yield urls, t, a, tap


async def test_as_real_broker_users_a_forged_trainer_request_is_dead_lettered_and_an_unknown_app_refused(fresh):
    spec = small_spec((1, "8GB"))
    forged = workload(spec, workload_id="EXT-F0A6ED01", requester="mes")
    ghost = workload(small_spec((1, "8GB"), app_id="APP-N0PE00"), workload_id="EXT-GH0S7002", requester="mes")
    valid = workload(spec, workload_id="EXT-600D0002", requester="mes")
    async with _platform_as_own_users(fresh) as (urls, trainer, approval, tap):
        await _app_ready(urls["builder"], trainer, spec)
        # mes posing as the trainer: believed by nobody
        await _request(urls["ext-mes"], forged, producer="trainer")
        await _request(urls["ext-mes"], ghost, producer="mes")
        await _request(urls["ext-mes"], valid, producer="mes")
        ran = await request_status(trainer, valid.workload_id, "approved")
        refused = await request_status(trainer, ghost.workload_id, "refused")
        letters = {service: await wait_until(lambda s=service: dead_letters(fresh.rabbitmq_url, s),
                                             message=f"the {service} dead letter")
                   for service in ("trainer", "approval")}
        assert await tap.settled_count("workload.approved", forged.workload_id) == 0
        assert tap.of("workload.approved", ghost.workload_id) == []
        missing = await trainer.client.get(f"/training-requests/{forged.workload_id}", headers=trainer.headers("viewer"))
        approvals = (await approval.client.get("/approvals", headers=approval.headers("viewer"))).json()
    for service, [letter] in letters.items():
        assert letter.headers[REASON_HEADER] == (f"untrusted event: producer 'trainer' is forged: user "
                                                 f"{fresh.user_prefix}ext-mes publishes as 'mes'"), service
    assert missing.status_code == 404
    assert [item["workload_id"] for item in approvals["items"]] == [valid.workload_id]
    assert refused["outcome"] == "refused: version 1.0.0 of app APP-N0PE00 is not a ready app on the platform"
    assert [(e["type"], e["producer"]) for e in ran["timeline"]] == [
        ("training.requested", "mes"), ("training.requested", "trainer"), ("workload.approved", "approval")]


async def test_an_outside_system_cannot_name_a_platform_user_as_its_requester(fresh):
    """Even a user who submitted through the trainer: the outside system cannot prove it acts for them; it
    names whom it acts for under its own prefix."""
    spec = small_spec((1, "8GB"))
    impostor = workload(spec, workload_id="EXT-5A1A6E01", requester="kim")
    on_behalf = workload(spec, workload_id="EXT-5A1A6E02", requester="mes:kim")
    async with trainer_service(fresh) as trainer, approval_service(fresh), tapped(fresh.rabbitmq_url) as tap:
        await _app_ready(fresh.rabbitmq_url, trainer, spec)
        submitted = await trainer.client.post("/training-requests", json={"app_id": spec.app_id},
                                              headers=trainer.headers("researcher", "kim"))
        assert submitted.status_code == 202, submitted.text
        await _request(fresh.rabbitmq_url, impostor, producer="mes")
        await _request(fresh.rabbitmq_url, on_behalf, producer="mes")
        view = await request_status(trainer, impostor.workload_id, "refused")
        await wait_until(lambda: tap.settled_count("workload.approved", on_behalf.workload_id),
                         message="the request on kim's behalf approved")
        assert await tap.settled_count("workload.approved", impostor.workload_id) == 0
    assert view["outcome"] == ("refused: requester 'kim' is not one 'mes' may name: the publishing system itself "
                               "('mes') or someone it acts for (mes:<name>)")
