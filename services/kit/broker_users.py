"""The platform's RabbitMQ users, their permissions and the topology, as a RabbitMQ definitions file.

    python -m services.kit.broker_users template > deploy/rabbitmq/definitions.json   # what is committed
    python -m services.kit.broker_users render --outside mes --admin ops --out /defs/definitions.json

The template names, for each user, the environment variable holding its password
(`${AVATAR_BROKER_PASSWORD_TRAINER}`) instead of a hash; `render` (run where the secrets are: compose's
rabbitmq-definitions, the dev StatefulSet's init container) replaces each with the salted SHA-256 hash
RabbitMQ stores (rabbit_password_hashing_sha256), so no password or hash is ever in git. Outside
publishers (`--outside NAME`, or AVATAR_BROKER_OUTSIDE="mes partner") get `avatar-ext-NAME` with
AVATAR_BROKER_PASSWORD_EXT_NAME; `--admin NAME` an administrator with AVATAR_BROKER_PASSWORD_ADMIN (a
broker that loads definitions at boot creates no default user). Users and patterns: contracts/topology.py.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import sys
from pathlib import Path

from contracts.topology import (DEAD_LETTER_EXCHANGE, EXCHANGE, SUBSCRIPTIONS, USER_PREFIX, dead_letter_queue,
                                outside_permissions, outside_topic_permissions, outside_user, queue_name,
                                service_permissions, service_topic_permissions, service_user)

HASHING = "rabbit_password_hashing_sha256"
_PLACEHOLDER = re.compile(r"^\$\{(AVATAR_BROKER_PASSWORD_[A-Z0-9_]+)\}$")


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's stored form of a password: base64(salt + sha256(salt + password)), a 4-byte salt."""
    salt = secrets.token_bytes(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def password_variable(user: str, prefix: str = USER_PREFIX) -> str:
    """The environment variable holding a user's password: avatar-trainer -> AVATAR_BROKER_PASSWORD_TRAINER."""
    return "AVATAR_BROKER_PASSWORD_" + re.sub(r"[^A-Z0-9]", "_", user.removeprefix(prefix).upper())


def users(vhost: str, hashes: dict[str, str], *, services: tuple[str, ...] = tuple(SUBSCRIPTIONS),
          outside: tuple[str, ...] = (), prefix: str = USER_PREFIX) -> dict:
    """Users (each service's and each outside publisher's) with their permissions in `vhost`;
    `hashes[user]` is what goes in its password_hash."""
    defs: dict[str, list] = {"users": [], "permissions": [], "topic_permissions": []}
    for service in services:
        user = service_user(service, prefix)
        defs["users"].append({"name": user, "password_hash": hashes[user], "hashing_algorithm": HASHING, "tags": []})
        defs["permissions"].append({"user": user, "vhost": vhost, **service_permissions(service)})
        defs["topic_permissions"].append({"user": user, "vhost": vhost, **service_topic_permissions(service)})
    for name in outside:
        user = outside_user(name, prefix)
        defs["users"].append({"name": user, "password_hash": hashes[user], "hashing_algorithm": HASHING, "tags": []})
        defs["permissions"].append({"user": user, "vhost": vhost, **outside_permissions()})
        defs["topic_permissions"].append({"user": user, "vhost": vhost, **outside_topic_permissions()})
    return defs


def topology(vhost: str) -> dict:
    """Both exchanges, every service's queue and dead-letter queue, and their bindings: declared by the
    broker at boot, so an event waits for a consumer that has not started yet."""
    exchanges = [{"name": name, "vhost": vhost, "type": kind, "durable": True, "auto_delete": False,
                  "internal": False, "arguments": {}}
                 for name, kind in ((EXCHANGE, "topic"), (DEAD_LETTER_EXCHANGE, "direct"))]
    queues, bindings = [], []
    for service, keys in SUBSCRIPTIONS.items():
        queues.append({"name": queue_name(service), "vhost": vhost, "durable": True, "auto_delete": False,
                       "arguments": {"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                                     "x-dead-letter-routing-key": service}})
        queues.append({"name": dead_letter_queue(service), "vhost": vhost, "durable": True, "auto_delete": False,
                       "arguments": {}})
        bindings += [{"source": EXCHANGE, "vhost": vhost, "destination": queue_name(service),
                      "destination_type": "queue", "routing_key": key, "arguments": {}} for key in keys]
        bindings.append({"source": DEAD_LETTER_EXCHANGE, "vhost": vhost, "destination": dead_letter_queue(service),
                         "destination_type": "queue", "routing_key": service, "arguments": {}})
    return {"exchanges": exchanges, "queues": queues, "bindings": bindings}


def template(vhost: str = "avatar") -> dict:
    placeholders = {service_user(s): "${%s}" % password_variable(service_user(s)) for s in SUBSCRIPTIONS}
    return {"vhosts": [{"name": vhost}], **users(vhost, placeholders), **topology(vhost)}


def render(defs: dict, env: dict[str, str], *, outside: tuple[str, ...] = (), admin: str | None = None) -> dict:
    """The template with each password placeholder replaced by its hash, plus the outside publishers."""
    rendered = json.loads(json.dumps(defs))
    vhost = rendered["vhosts"][0]["name"]
    extra = users(vhost, {outside_user(n): "${%s}" % password_variable(outside_user(n)) for n in outside},
                  services=(), outside=outside)
    if admin:
        extra["users"].append({"name": admin, "password_hash": "${AVATAR_BROKER_PASSWORD_ADMIN}",
                               "hashing_algorithm": HASHING, "tags": ["administrator"]})
        extra["permissions"].append({"user": admin, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"})
    for key, entries in extra.items():
        rendered[key] = rendered.get(key, []) + entries
    missing = []
    for user in rendered["users"]:
        match = _PLACEHOLDER.match(user["password_hash"])
        if match is None:
            continue
        if not env.get(match.group(1)):
            missing.append(match.group(1))
            continue
        user["password_hash"] = password_hash(env[match.group(1)])
    if missing:
        raise SystemExit(f"set the broker passwords {', '.join(missing)} (secrets, deploy/README.md)")
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("template", help="the committed definitions, with password placeholders")
    rendering = sub.add_parser("render", help="the definitions RabbitMQ loads, hashes from the environment")
    rendering.add_argument("--template", type=Path, help="a template file (default: the platform's, as committed)")
    rendering.add_argument("--outside", action="append", default=os.environ.get("AVATAR_BROKER_OUTSIDE", "").split(),
                           metavar="NAME",
                           help="an outside publisher (user avatar-ext-NAME, password AVATAR_BROKER_PASSWORD_EXT_NAME)")
    rendering.add_argument("--admin", metavar="NAME", help="an administrator (password AVATAR_BROKER_PASSWORD_ADMIN)")
    rendering.add_argument("--out", type=Path, help="write here (default: standard output)")
    args = parser.parse_args(argv)
    if args.command == "template":
        defs, out = template(), None
    else:
        source = json.loads(args.template.read_text()) if args.template else template()
        defs = render(source, dict(os.environ), outside=tuple(dict.fromkeys(args.outside)), admin=args.admin)
        out = args.out
    text = json.dumps(defs, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
