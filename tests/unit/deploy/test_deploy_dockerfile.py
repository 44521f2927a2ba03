"""deploy/Dockerfile: one non-root image that runs the gateway or any of the six services."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
IGNORE_FILE = REPO / "deploy" / "Dockerfile.dockerignore"


def instructions():
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    return [tuple(re.split(r"\s+", entry, maxsplit=1)) for entry in logical]


@pytest.fixture(scope="module")
def steps():
    return [(op.upper(), args) for op, args in instructions()]


def args_of(steps, op):
    return [args for o, args in steps if o == op]


def test_base_image_is_python_311_slim(steps):
    default = dict(a.split("=", 1) for a in args_of(steps, "ARG") if "=" in a)["PYTHON_IMAGE"]
    assert default == "python:3.11-slim"
    for base in args_of(steps, "FROM"):
        assert base.split()[0] == "${PYTHON_IMAGE}"


def test_installs_the_project_from_the_repository_root(steps):
    copies = [a.split() for a in args_of(steps, "COPY") if not a.startswith("--from")]
    for parts in copies:
        for source in parts[:-1]:
            assert (REPO / source).exists(), f"COPY source {source} is not in the repository"
    assert any("pip install ." in a for a in args_of(steps, "RUN"))


def test_runs_from_the_source_tree_so_non_python_files_ship(steps):
    # the wheel holds only .py files; migrations/*.sql and data files come from /app
    assert any(a.startswith("--from=build") and a.split()[-2:] == ["/src", "/app"] for a in args_of(steps, "COPY"))
    assert args_of(steps, "WORKDIR")[-1] == "/app"
    assert any("PYTHONPATH=/app" in a for a in args_of(steps, "ENV"))


def test_runs_as_a_non_root_user(steps):
    user = args_of(steps, "USER")[-1]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0, "numeric non-root uid (runAsNonRoot can check it)"


def test_service_argument_selects_the_module(steps):
    assert any(a.startswith("SERVICE") for a in args_of(steps, "ARG"))
    assert any("AVATAR_SERVICE=${SERVICE}" in a for a in args_of(steps, "ENV"))
    cmd = args_of(steps, "CMD")[-1]
    assert "python -m" in cmd and "services.${AVATAR_SERVICE" in cmd and "exec " in cmd


def test_healthcheck_probes_healthz_with_urllib(steps):
    check = args_of(steps, "HEALTHCHECK")[-1]
    assert "urllib.request" in check and "/healthz" in check and "AVATAR_PORT" in check


def test_ignore_file_keeps_what_the_image_copies():
    lines = [l.strip() for l in IGNORE_FILE.read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert lines[0] == "**", "allow-list: everything else (.venv, .git, tests) stays out of the context"
    for needed in ("pyproject.toml", "contracts/", "services/", "components/"):
        assert f"!{needed}" in lines
