"""`make up --split SERVICE` (services.kit.stack): the service runs as its API process and its event-side
process, each told its role, on ports of their own."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.kit import stack as stack_module
from services.kit.settings import Settings
from services.kit.stack import SERVICES, Stack, main


def test_a_split_service_is_two_processes_each_told_its_role(tmp_path, monkeypatch):
    stack = Stack(run_dir=tmp_path, split=("trainer",))
    assert stack.processes() == ("library", "builder", "trainer", "trainer-events", "approval", "scheduler", "models",
                                 "gateway")
    assert stack.processes(("trainer", "models")) == ("trainer", "trainer-events", "models")
    assert stack.ports["trainer-events"] not in {stack.ports[name] for name in SERVICES}
    recorded: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(stack, "_spawn", lambda name, argv, env: recorded.append((name, argv, env)))
    for process in stack.processes(("trainer", "models")):
        stack.start_service(process)
    roles = {name: (argv[-1], env["AVATAR_ROLE"], int(env["AVATAR_PORT"])) for name, argv, env in recorded}
    assert roles == {"trainer": ("services.trainer", "api", stack.ports["trainer"]),
                     "trainer-events": ("services.trainer", "events", stack.ports["trainer-events"]),
                     "models": ("services.models", "all", stack.ports["models"])}
    for name, _, env in recorded:  # what each process makes of its environment
        monkeypatch.setenv("AVATAR_ROLE", env["AVATAR_ROLE"])
        settings = Settings()
        assert settings.serves_api == (name != "trainer-events") and settings.handles_events == (name != "trainer")


def test_behind_a_split_front_door_every_other_process_runs_niced(tmp_path, monkeypatch):
    stack = Stack(run_dir=tmp_path, split=("trainer",), background_nice=5)
    recorded: dict[str, dict[str, str]] = {}
    monkeypatch.setattr(stack, "_spawn", lambda name, argv, env: recorded.__setitem__(name, env))
    for process in stack.processes():
        stack.start_service(process)
    assert {name: env.get("AVATAR_NICE") for name, env in recorded.items()} == {
        "library": "5", "builder": "5", "trainer": None, "trainer-events": "5", "approval": "5", "scheduler": "5",
        "models": "5", "gateway": None}
    monkeypatch.setenv("AVATAR_NICE", "5")
    assert Settings().nice == 5
    monkeypatch.setenv("AVATAR_NICE", "20")
    with pytest.raises(ValidationError):
        Settings()


def test_the_cli_refuses_a_background_nice_without_a_front_door(capsys):
    with pytest.raises(SystemExit):
        main(["up", "--background-nice", "5"])
    assert "--background-nice needs --split" in capsys.readouterr().err


def test_the_s3_server_serves_the_background_work_and_is_niced_with_it(tmp_path, monkeypatch):
    niced: list[tuple[int, int]] = []
    monkeypatch.setattr(stack_module, "lower_priority", lambda pid, nice: niced.append((pid, nice)))
    monkeypatch.setattr(stack_module, "port_open", lambda port: False)
    monkeypatch.setattr(stack_module, "wait_for", lambda *args: None)
    for nice, expected in ((5, [(4242, 5)]), (0, [])):
        niced.clear()
        stack = Stack(run_dir=tmp_path / str(nice), split=("trainer",), background_nice=nice)
        monkeypatch.setattr(stack, "_spawn", lambda name, argv, env: 4242)
        stack.start_s3()
        assert niced == expected
