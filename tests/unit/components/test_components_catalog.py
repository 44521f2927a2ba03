"""The library's seed catalog matches docs/spec.md §2.2 and every entry runs a real component."""
from __future__ import annotations

import json
import re
import tomllib

from component_harness import REPO

CATALOG = json.loads((REPO / "components" / "catalog.json").read_text())
FIELDS = {"name", "image", "description", "version", "type", "resources", "params", "command"}


def test_catalog_lists_the_seed_components_in_order():
    assert [c["name"] for c in CATALOG] == [
        "env-simulator", "rl-agent", "reward-calc", "param-optimizer", "data-loader", "probe"]
    for entry in CATALOG:
        assert set(entry) == FIELDS, entry["name"]
        assert set(entry["image"]) == {"registry", "tag"}
        assert set(entry["resources"]) == {"gpu_type", "gpu_count", "memory"}
        assert entry["type"] in {"trainer", "data_loader", "preprocessor", "evaluator", "other"}
        assert entry["description"] and entry["version"]


def test_catalog_images_and_resources_match_the_spec_example():
    by_name = {c["name"]: c for c in CATALOG}
    expected = {
        "env-simulator": ("registry.avatar.io/env-sim", "1.0", "A100", 2, "64GB"),
        "rl-agent": ("registry.avatar.io/rl-agent", "2.0", "A100", 4, "128GB"),
        "reward-calc": ("registry.avatar.io/reward-calc", "1.0", "V100", 1, "16GB"),
        "param-optimizer": ("registry.avatar.io/param-opt", "1.5", "A100", 2, "64GB"),
        "data-loader": ("registry.avatar.io/data-loader", "1.0", "V100", 1, "32GB"),
        "probe": ("registry.avatar.io/probe", "1.0", "V100", 0, "1GB"),
    }
    for name, (registry, tag, gpu_type, gpu_count, memory) in expected.items():
        entry = by_name[name]
        assert entry["image"] == {"registry": registry, "tag": tag}
        assert entry["resources"] == {"gpu_type": gpu_type, "gpu_count": gpu_count, "memory": memory}
    assert by_name["rl-agent"]["params"] == {"lr": 0.001, "episodes": 1000}
    assert by_name["rl-agent"]["type"] == "trainer"
    assert by_name["reward-calc"]["type"] == "evaluator"
    assert by_name["data-loader"]["type"] == "data_loader"
    assert by_name["probe"]["params"] == {"sleep_s": 0, "exit_code": 0, "output_bytes": 16}


def test_every_command_has_a_package_and_a_matching_dockerfile():
    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = sorted(p for p in pins if p.split("==")[0] in {"numpy", "minio"})
    for entry in CATALOG:
        assert entry["command"][:2] == ["python", "-m"]
        package = entry["command"][2].removeprefix("components.")
        folder = REPO / "components" / package
        assert (folder / "__main__.py").is_file(), package
        dockerfile = (folder / "Dockerfile").read_text()
        assert dockerfile.startswith("# Build") and "FROM ${BASE}" in dockerfile
        assert "ARG BASE=avatar-components-base:" in dockerfile
        assert f'ENTRYPOINT ["python", "-m", "components.{package}"]' in dockerfile
    base = (REPO / "components" / "Dockerfile.base").read_text()
    assert "FROM python:3.11-slim" in base and "USER 10001" in base
    assert sorted(re.findall(r"\b(?:numpy|minio)==[\d.]+", base)) == wanted
