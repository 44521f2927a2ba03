#!/usr/bin/env bash
# Creates the Secrets the dev overlay expects, with random values, in namespace
# avatar-dev (or $1). Existing Secrets are left alone: PostgreSQL keeps the password it
# was initialised with. Nothing here is ever written to the repository.
set -euo pipefail
ns="${1:-avatar-dev}"
rand() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"

if kubectl -n "$ns" get secret avatar-secrets >/dev/null 2>&1; then
  echo "secret/avatar-secrets exists in $ns: kept"
else
  kubectl -n "$ns" create secret generic avatar-secrets \
    --from-literal=POSTGRES_USER=avatar \
    --from-literal=POSTGRES_PASSWORD="$(rand)" \
    --from-literal=RABBITMQ_USER=avatar \
    --from-literal=RABBITMQ_PASSWORD="$(rand)" \
    --from-literal=REDIS_PASSWORD="$(rand)" \
    --from-literal=AVATAR_S3_ACCESS_KEY=avatar-dev \
    --from-literal=AVATAR_S3_SECRET_KEY="$(rand)" \
    --from-literal=AVATAR_JWT_SECRET="$(rand)" \
    --from-literal=AVATAR_SECRETS_KEY="$(python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')"
fi

if kubectl -n "$ns" get secret avatar-broker-users >/dev/null 2>&1; then
  echo "secret/avatar-broker-users exists in $ns: kept"
  # made before the gateway existed: give it the gateway's broker user too (then restart rabbitmq)
  if [ -z "$(kubectl -n "$ns" get secret avatar-broker-users -o jsonpath='{.data.AVATAR_BROKER_PASSWORD_GATEWAY}')" ]; then
    kubectl -n "$ns" patch secret avatar-broker-users --type merge \
      -p "{\"stringData\": {\"AVATAR_BROKER_PASSWORD_GATEWAY\": \"$(rand)\"}}"
    echo "added AVATAR_BROKER_PASSWORD_GATEWAY: kubectl -n $ns rollout restart statefulset/rabbitmq"
  fi
else
  # each service's own RabbitMQ user avatar-<service> (deploy/rabbitmq); add outside publishers with
  # AVATAR_BROKER_OUTSIDE="<name> ..." and AVATAR_BROKER_PASSWORD_EXT_<NAME> (deploy/README.md)
  kubectl -n "$ns" create secret generic avatar-broker-users \
    --from-literal=AVATAR_BROKER_PASSWORD_BUILDER="$(rand)" \
    --from-literal=AVATAR_BROKER_PASSWORD_LIBRARY="$(rand)" \
    --from-literal=AVATAR_BROKER_PASSWORD_TRAINER="$(rand)" \
    --from-literal=AVATAR_BROKER_PASSWORD_APPROVAL="$(rand)" \
    --from-literal=AVATAR_BROKER_PASSWORD_SCHEDULER="$(rand)" \
    --from-literal=AVATAR_BROKER_PASSWORD_MODELS="$(rand)" \
    --from-literal=AVATAR_BROKER_PASSWORD_GATEWAY="$(rand)" \
    --from-literal=AVATAR_BROKER_OUTSIDE=""
fi

if kubectl -n "$ns" get secret avatar-gateway >/dev/null 2>&1; then
  echo "secret/avatar-gateway exists in $ns: kept"
else
  # the gateway's own PostgreSQL role's password (its db-role init container makes the role) and a first
  # admin; OIDC: add AVATAR_OIDC_CLIENT_SECRET here and the rest to the ConfigMap avatar-gateway
  kubectl -n "$ns" create secret generic avatar-gateway \
    --from-literal=POSTGRES_GATEWAY_PASSWORD="$(rand)" \
    --from-literal=AVATAR_BOOTSTRAP_ADMIN=admin \
    --from-literal=AVATAR_BOOTSTRAP_ADMIN_PASSWORD="$(rand)"
  echo "first admin: admin; its password:" \
    "kubectl -n $ns get secret avatar-gateway -o jsonpath='{.data.AVATAR_BOOTSTRAP_ADMIN_PASSWORD}' | base64 -d"
fi

if kubectl -n "$ns" get secret avatar-component-s3 >/dev/null 2>&1; then
  echo "secret/avatar-component-s3 exists in $ns: kept"
else
  # dev: component pods use the same (MinIO root) key as the services
  kubectl -n "$ns" create secret generic avatar-component-s3 \
    --from-literal=AVATAR_S3_ACCESS_KEY="$(kubectl -n "$ns" get secret avatar-secrets -o jsonpath='{.data.AVATAR_S3_ACCESS_KEY}' | base64 -d)" \
    --from-literal=AVATAR_S3_SECRET_KEY="$(kubectl -n "$ns" get secret avatar-secrets -o jsonpath='{.data.AVATAR_S3_SECRET_KEY}' | base64 -d)"
fi
