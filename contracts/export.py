"""Export JSON Schemas of every event and the AsyncAPI document to contracts/schemas/.

    python -m contracts.export          # write
    python -m contracts.export --check  # exit 1 when the committed files are stale
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from contracts.events import CATALOGUE, EVENT_TYPES
from contracts.spec import AppSpec
from contracts.topology import DEAD_LETTER_EXCHANGE, EXCHANGE, SUBSCRIPTIONS, queue_name
from contracts.workload import Workload

SCHEMA_DIR = Path(__file__).parent / "schemas"


def event_schema(event_type: str) -> dict:
    schema = EVENT_TYPES[event_type].model_json_schema(by_alias=True, mode="validation")
    schema["$id"] = f"https://avatar.one/schemas/{event_type}.json"
    schema["title"] = event_type
    return schema


def asyncapi_document() -> dict:
    producers: dict[str, list[str]] = {}
    channels, operations, messages = {}, {}, {}
    for event_type, (_, description) in CATALOGUE.items():
        name = event_type.replace(".", "_")
        messages[name] = {
            "name": event_type,
            "contentType": "application/json",
            "summary": description,
            "headers": {"type": "object", "properties": {"traceparent": {"type": "string"}}},
            "payload": {"$ref": f"./{event_type}.json"},
        }
        channels[name] = {
            "address": event_type,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {"amqp": {"is": "routingKey", "exchange": {"name": EXCHANGE, "type": "topic", "durable": True}}},
        }
        consumers = [service for service, keys in SUBSCRIPTIONS.items() if event_type in keys]
        for service in consumers:
            operations[f"{service}_receives_{name}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{name}"},
                "summary": f"{service} consumes from queue {queue_name(service)} (dead letters: {DEAD_LETTER_EXCHANGE})",
            }
        producers.setdefault(event_type, consumers)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "AVATAR OnE events",
            "version": "1.0.0",
            "description": (
                f"Every event is published to the durable topic exchange `{EXCHANGE}` with its type as the "
                "routing key, persistent, as JSON with the envelope (event_id, type, version, occurred_at, "
                "producer, correlation_id, causation_id, data). W3C `traceparent` travels in the headers. "
                "Every publisher connects as its own RabbitMQ user and sets the AMQP `user_id` property (RabbitMQ "
                "checks it against the connection): a service's user `avatar-<service>` publishes as producer "
                "<service>, an outside system's `avatar-ext-<name>` only `training.requested` as producer <name>. "
                "An event whose producer is not what its user_id may publish as is dead-lettered with the reason "
                "(deploy/README.md: getting credentials)."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def rendered() -> dict[str, str]:
    files = {f"{event_type}.json": event_schema(event_type) for event_type in EVENT_TYPES}
    files["app-spec.json"] = AppSpec.model_json_schema(by_alias=True)
    files["workload.json"] = Workload.model_json_schema(by_alias=True)
    files["asyncapi.json"] = asyncapi_document()
    return {name: json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n" for name, doc in files.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if contracts/schemas is stale")
    args = parser.parse_args(argv)
    files = rendered()
    if args.check:
        stale = [name for name, text in files.items()
                 if not (SCHEMA_DIR / name).exists() or (SCHEMA_DIR / name).read_text() != text]
        extra = {p.name for p in SCHEMA_DIR.glob("*.json")} - set(files)
        if stale or extra:
            print(f"contracts/schemas is stale: {sorted(stale) + sorted(extra)}; run `python -m contracts.export`",
                  file=sys.stderr)
            return 1
        print(f"contracts/schemas up to date ({len(files)} files)")
        return 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for old in SCHEMA_DIR.glob("*.json"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        (SCHEMA_DIR / name).write_text(text)
    print(f"wrote {len(files)} files to {SCHEMA_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
