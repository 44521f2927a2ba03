"""deploy/rabbitmq/definitions.json is the topology and the users' permissions as the code has them, and
what `render` makes of it is a definitions file RabbitMQ loads and its users can log in with."""
from __future__ import annotations

import json
from pathlib import Path

import aio_pika
import aiormq
import pytest

from contracts.topology import SUBSCRIPTIONS
from services.kit import broker_users
from tests.support.infra import rabbitmqctl

COMMITTED = Path(__file__).parents[3] / "deploy" / "rabbitmq" / "definitions.json"


def test_the_committed_definitions_are_current_and_hold_no_secret():
    committed = json.loads(COMMITTED.read_text())
    assert committed == broker_users.template(), "run: python -m services.kit.broker_users template > " \
                                                 "deploy/rabbitmq/definitions.json"
    assert {user["password_hash"] for user in committed["users"]} == {
        "${%s}" % broker_users.password_variable(f"avatar-{service}") for service in SUBSCRIPTIONS}


def test_rendering_refuses_a_missing_password():
    with pytest.raises(SystemExit, match="AVATAR_BROKER_PASSWORD_TRAINER"):
        broker_users.render(broker_users.template(), {})


async def test_the_rendered_definitions_load_and_each_user_gets_only_its_own(fresh):
    vhost = f"{fresh.run_id}-definitions"
    defs = broker_users.template(vhost)
    passwords = {user["name"]: f"pw-{fresh.run_id}-{n}" for n, user in enumerate(defs["users"])}
    env = {broker_users.password_variable(name): password for name, password in passwords.items()}
    env["AVATAR_BROKER_PASSWORD_EXT_MES"] = f"pw-{fresh.run_id}-mes"
    rendered = broker_users.render(defs, env, outside=("mes",))
    # this run's own user names: users are per node, and another run may hold avatar-trainer
    renamed = {user["name"]: f"{fresh.user_prefix}{user['name'].removeprefix('avatar-')}" for user in rendered["users"]}
    for entry in (*rendered["users"], *rendered["permissions"], *rendered["topic_permissions"]):
        key = "name" if "password_hash" in entry else "user"
        entry[key] = renamed[entry[key]]
    fresh._users += list(renamed.values())
    fresh._vhosts.append(vhost)
    rabbitmqctl("import_definitions", input=json.dumps(rendered))
    base = f"{fresh.rabbitmq_base.split('://')[0]}://"
    host = fresh.rabbitmq_base.split("@")[-1].rstrip("/")
    trainer = await aio_pika.connect(f"{base}{renamed['avatar-trainer']}:{passwords['avatar-trainer']}@{host}/{vhost}")
    async with trainer:
        channel = await trainer.channel()
        queue = await channel.declare_queue("trainer.events", passive=True)  # the broker declared it
        assert queue.name == "trainer.events"
        others = await (await trainer.channel()).get_queue("approval.events", ensure=False)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await others.get(fail=False)  # reading another service's queue
    mes = await aio_pika.connect(f"{base}{renamed['avatar-ext-mes']}:{env['AVATAR_BROKER_PASSWORD_EXT_MES']}@{host}/{vhost}")
    async with mes:
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await (await mes.channel()).declare_queue("mine", durable=True)
