"""deploy/compose: the Compose file, its config files, and the Grafana/Prometheus wiring."""

import hashlib
import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from contracts.topology import SUBSCRIPTIONS, service_user
from services.gateway.settings import UPSTREAMS, GatewaySettings
from services.kit.broker_users import password_variable
from services.kit.settings import Settings

REPO = Path(__file__).resolve().parents[3]
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
SCHEMA_FILE = Path(__file__).parent / "schemas" / "compose-spec.json"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"

SERVICES = {"gateway": 8000, "builder": 8001, "library": 8002, "trainer": 8003, "approval": 8004, "scheduler": 8005,
            "models": 8006}
GATEWAY_ROLE = "avatar_gateway"  # the gateway's own PostgreSQL role, made by the one-shot postgres-roles
JWKS_URL = "http://gateway:8000/api/auth/jwks.json"
ROLE_SQL = REPO / "deploy" / "k8s" / "base" / "gateway-role.sql"
OIDC_EXAMPLE = COMPOSE_DIR / "gateway-oidc.env.example"
# compose service → (the service it runs, AVATAR_ROLE): the trainer runs as its API and its event side
ROLES = {"trainer": ("trainer", "api"), "trainer-events": ("trainer", "events")}
BUCKETS = {"avatar-staging", "avatar-models", "avatar-logs"}
METRICS = {
    "avatar_workloads_total", "avatar_workloads_failed_total", "avatar_saga_step_seconds_bucket",
    "avatar_queue_depth", "avatar_gpus", "avatar_outbox_pending", "avatar_outbox_oldest_age_seconds",
    "avatar_dlq_depth", "avatar_consumer_retries_total", "avatar_model_store_retries_total",
}
DEFINED_METRIC = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*[\"'](avatar_[a-z_]+)[\"']")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$")

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR; $$ is a literal $
VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}"
                      r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value, env):
    """Compose-style interpolation of every string in a loaded Compose document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match):
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"]
        present = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if present:
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"required variable {name} is not set: {arg}")
        if op and op.endswith("-"):
            return arg
        return ""

    return VARIABLE.sub(substitute, value)


def strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


def variables_used(document):
    return [m for text in strings(document) for m in VARIABLE.finditer(text) if not m["escaped"]]


def load_env_file(path):
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def env_example():
    return load_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def compose(raw, env_example):
    return interpolate(raw, env_example)


@pytest.fixture(scope="module")
def avatar_services(compose):
    return {name: svc for name, svc in compose["services"].items()
            if svc.get("build", {}).get("dockerfile") == "deploy/Dockerfile" and name != "rabbitmq-definitions"}


def test_vendored_schema_is_the_recorded_version():
    assert hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_compose_file_validates_against_compose_spec(compose):
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_schema_check_is_not_vacuous(compose):
    schema = json.loads(SCHEMA_FILE.read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["builder"]["helthcheck"] = broken["services"]["builder"].pop("healthcheck")
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(broken))


def test_every_variable_is_listed_in_env_example(raw, env_example):
    used = {m["braced"] or m["bare"] for m in variables_used(raw)}
    assert used, "the compose file reads its settings from the environment"
    assert sorted(used - env_example.keys()) == []


def test_secrets_are_required_and_have_no_default(raw):
    for match in variables_used(raw):
        name = match["braced"] or match["bare"]
        if SECRET_NAME.search(name):
            assert match["op"] == ":?", f"{match[0]}: a secret must be required (${{{name}:?...}}), never defaulted"


def test_starting_without_env_refuses(raw):
    with pytest.raises(KeyError, match="required variable"):
        interpolate(raw, {})


def test_env_example_holds_no_real_secret(env_example):
    for name, value in env_example.items():
        if SECRET_NAME.search(name) and name != "AVATAR_S3_ACCESS_KEY":
            assert value.startswith("change-me"), f"{name} in .env.example must be a placeholder"


def test_build_contexts_and_dockerfiles_exist(compose):
    built = [svc for svc in compose["services"].values() if "build" in svc]
    assert built
    for svc in built:
        context = (COMPOSE_DIR / svc["build"]["context"]).resolve()
        assert context == REPO, "services build with the repository root as context"
        assert (context / svc["build"]["dockerfile"]).is_file()


def test_mounted_config_files_exist(compose):
    mounted = []
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                mounted.append(source)
                assert (COMPOSE_DIR / source).exists(), f"{name} mounts missing {source}"
    assert {"./prometheus/prometheus.yml", "./grafana/provisioning", "./grafana/dashboards"} <= set(mounted)


def test_runs_exactly_the_gateway_and_the_six_services(avatar_services):
    started = {svc["build"]["args"]["SERVICE"] for svc in avatar_services.values()}
    assert started == set(SERVICES)
    assert avatar_services.keys() == {*SERVICES, "trainer-events"}
    for name, svc in avatar_services.items():
        service = svc["build"]["args"]["SERVICE"]
        assert (service, svc["environment"].get("AVATAR_ROLE", "all")) == ROLES.get(name, (name, "all"))
        assert (REPO / "services" / service / "__main__.py").is_file() and service in SERVICES
        port = str(SERVICES[service])
        assert svc["build"]["args"]["PORT"] == port
        assert svc["environment"]["AVATAR_PORT"] == port
        assert svc["environment"]["OTEL_SERVICE_NAME"] == service
        assert svc["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"


def test_service_environment(avatar_services):
    for name, svc in avatar_services.items():
        env = svc["environment"]
        assert env["AVATAR_POSTGRES_URL"].startswith("postgresql://") and env["AVATAR_POSTGRES_URL"].endswith("@postgres:5432/avatar")
        assert env["AVATAR_RABBITMQ_URL"].startswith(f"amqp://avatar-{name.removesuffix('-events')}:")
        assert "@rabbitmq:5672/" in env["AVATAR_RABBITMQ_URL"], "each service connects as its own broker user"
        assert env["AVATAR_S3_ENDPOINT"] == "http://minio:9000"
        assert env["AVATAR_ENV"] != "local", "compose runs with real secrets, not the local defaults"
    assert avatar_services["scheduler"]["environment"]["AVATAR_REDIS_URL"].endswith("@redis:6379/0")
    assert avatar_services["gateway"]["environment"]["AVATAR_REDIS_URL"].endswith("@redis:6379/0")
    assert avatar_services["scheduler"]["environment"]["AVATAR_SCHEDULER_RUNNER"] == "local"
    assert avatar_services["builder"]["environment"]["AVATAR_LIBRARY_URL"] == "http://library:8002"


def image_tag(image):
    if "@sha256:" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def test_every_image_is_pinned(compose):
    for name, svc in compose["services"].items():
        assert "image" in svc, f"{name} names its image"
        tag = image_tag(svc["image"])
        assert tag and tag != "latest", f"{name}: {svc['image']} is not pinned to a tag"


def test_dependencies_start_in_order(compose, avatar_services):
    services = compose["services"]
    for name, svc in services.items():
        depends_on = svc.get("depends_on") or {}
        if isinstance(depends_on, list):  # short syntax: started, not healthy
            depends_on = {dep: {"condition": "service_started"} for dep in depends_on}
        for dep, spec in depends_on.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy but it has no healthcheck"
            if spec["condition"] == "service_completed_successfully":
                assert services[dep].get("restart") == "no"
    for name, svc in avatar_services.items():
        deps = svc["depends_on"]
        for infra in ("postgres", "rabbitmq"):
            assert deps[infra]["condition"] == "service_healthy"
        assert deps["minio-init"]["condition"] == "service_completed_successfully"
        test = " ".join(svc["healthcheck"]["test"])
        assert "urllib" in test and "AVATAR_PORT" in test
    assert avatar_services["scheduler"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert avatar_services["builder"]["depends_on"]["library"]["condition"] == "service_healthy"
    # the gateway starts once its own database role exists (and Redis, its limits and live events, answers)
    assert avatar_services["gateway"]["depends_on"]["postgres-roles"]["condition"] == "service_completed_successfully"
    assert avatar_services["gateway"]["depends_on"]["redis"]["condition"] == "service_healthy"
    # the broker boots with the users, permissions and topology rendered from deploy/rabbitmq
    assert services["rabbitmq"]["depends_on"]["rabbitmq-definitions"]["condition"] == "service_completed_successfully"
    assert "render" in services["rabbitmq-definitions"]["command"]


def test_infrastructure_is_all_there(compose):
    services = compose["services"]
    assert services["rabbitmq"]["image"].endswith("-management")
    assert any(p.endswith(":15672:15672") for p in services["rabbitmq"]["ports"])
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "avatar"
    assert services["redis"]["image"].startswith("redis:7")
    assert services["minio"]["image"].startswith("minio/minio:")
    assert services["minio-init"]["image"].startswith("minio/mc:")
    assert set(re.findall(r"avatar-[a-z]+", " ".join(services["minio-init"]["command"]))) >= BUCKETS
    assert services["jaeger"]["image"].startswith("jaegertracing/all-in-one:")
    assert any(p.endswith(":16686:16686") for p in services["jaeger"]["ports"])
    assert any(p.endswith(":4318:4318") for p in services["jaeger"]["ports"])


def test_published_ports_bind_to_the_configured_address(raw):
    for name, svc in raw["services"].items():
        for port in svc.get("ports", []):
            assert port.startswith("${AVATAR_BIND:-127.0.0.1}:"), f"{name} publishes {port} on every interface"


def test_prometheus_scrapes_the_gateway_and_the_six_services():
    config = yaml.safe_load((COMPOSE_DIR / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {t for group in jobs["avatar"]["static_configs"] for t in group["targets"]}
    assert jobs["avatar"].get("metrics_path", "/metrics") == "/metrics"
    assert targets == {f"{name}:{port}" for name, port in SERVICES.items()} | {"trainer-events:8003"}


def test_grafana_datasources_and_dashboard_provisioning():
    provisioning = COMPOSE_DIR / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "datasources.yml").read_text())["datasources"]
    by_type = {d["type"]: d for d in datasources}
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"
    assert by_type["jaeger"]["url"] == "http://jaeger:16686"
    providers = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"


def metrics_defined_in_code():
    """Metric names registered with prometheus_client anywhere under services/ (histograms as _bucket)."""
    names = set()
    for path in (REPO / "services").rglob("*.py"):
        for kind, name in DEFINED_METRIC.findall(path.read_text(encoding="utf-8", errors="replace")):
            names.add(f"{name}_bucket" if kind == "Histogram" else name)
    return names


@pytest.fixture(scope="module")
def dashboard():
    return json.loads((COMPOSE_DIR / "grafana" / "dashboards" / "avatar-one.json").read_text())


def test_dashboard_queries_use_known_metrics_and_datasources(dashboard):
    datasources = yaml.safe_load((COMPOSE_DIR / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text())
    uids = {d["uid"] for d in datasources["datasources"]}
    exprs = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in uids
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids
            exprs.append(target["expr"])
    names = {n for e in exprs for n in re.findall(r"\b(avatar_[a-z_]+)\b", e)}
    known = METRICS | metrics_defined_in_code()
    assert names <= known, f"unknown metrics: {names - known}"
    assert METRICS <= names, f"metrics without a panel: {METRICS - names}"


@pytest.mark.parametrize("title, expr", [
    ("queue depth", "avatar_queue_depth"),
    ("gpu allocation by type", 'sum by (gpu_type) (avatar_gpus{state="allocated"})'),
    ("workloads by status", "sum by (event) (increase(avatar_workloads_total"),
    ("saga step latency", "histogram_quantile(0.95, sum by (le, step) (rate(avatar_saga_step_seconds_bucket"),
    ("dlq depth", "avatar_dlq_depth"),
    ("outbox lag", "avatar_outbox_oldest_age_seconds"),
    ("event loop lag", "rate(avatar_event_loop_lag_seconds_bucket"),
    ("http request latency", "rate(avatar_http_request_duration_seconds_bucket"),
    ("allocation drift", "increase(avatar_allocation_drift_total"),
    ("gateway: proxied requests", "avatar_gateway_upstream_failures_total"),
    ("gateway: rate-limited", "avatar_gateway_rate_limited_total"),
    ("gateway: live event clients", "avatar_gateway_sse_clients"),
    ("audit rows lost", "increase(avatar_audit_rows_lost_total"),
])
def test_dashboard_has_panel(dashboard, title, expr):
    panels = [p for p in dashboard["panels"] if title in p["title"].lower()]
    assert panels, f"no panel titled like {title!r}"
    assert any(expr in t["expr"] for p in panels for t in p["targets"])


def alert_rules():
    return [rule for group in yaml.safe_load((COMPOSE_DIR / "prometheus" / "alerts.yml").read_text())["groups"]
            for rule in group["rules"]]


def test_prometheus_loads_the_alert_rules_compose_mounts(compose):
    config = yaml.safe_load((COMPOSE_DIR / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in compose["services"]["prometheus"]["volumes"]


def test_alert_rules_are_complete_and_use_known_metrics():
    rules = alert_rules()
    assert rules
    for rule in rules:
        assert rule.keys() >= {"alert", "expr", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        names = set(re.findall(r"\b(avatar_[a-z_]+)\b", rule["expr"]))
        assert names and names <= metrics_defined_in_code(), f"{rule['alert']}: unknown metrics in {rule['expr']}"


def test_allocation_drift_alerts_on_any_repair_and_has_its_panel(dashboard):
    [drift] = [rule for rule in alert_rules() if rule["alert"] == "AllocationDrift"]
    assert "increase(avatar_allocation_drift_total[" in drift["expr"] and drift["expr"].rstrip().endswith("> 0")
    for rule in alert_rules():  # every alert's series is on the dashboard, in a panel named after it
        metrics = set(re.findall(r"\b(avatar_[a-z_]+)\b", rule["expr"]))
        panels = [p for p in dashboard["panels"] if rule["alert"] in p["title"]]
        assert panels and metrics <= {n for p in panels for t in p["targets"]
                                      for n in re.findall(r"\b(avatar_[a-z_]+)\b", t["expr"])}, rule["alert"]


def test_dashboard_panel_ids_are_unique(dashboard):
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


# ------------------------------------------------------------------ the gateway, the front door

def settings_from(env, kind, monkeypatch, extra=None):
    """`kind` read from the environment a container gets, the way the process reads it (pydantic-settings)."""
    for name in [n for n in os.environ if n.startswith("AVATAR_")]:
        monkeypatch.delenv(name)
    for name, value in {**env, **(extra or {})}.items():
        monkeypatch.setenv(name, str(value))
    return kind()


def test_gateway_is_the_one_published_front_door(compose, avatar_services):
    gateway = avatar_services["gateway"]
    assert [p for p in gateway["ports"] if p.endswith(":8000:8000")], "the gateway publishes 8000"
    assert gateway["build"]["args"] == {"SERVICE": "gateway", "PORT": "8000"}
    upstreams = json.loads(gateway["environment"]["AVATAR_UPSTREAM_URLS"])
    assert upstreams.keys() == set(UPSTREAMS) == SERVICES.keys() - {"gateway"}
    for service, url in upstreams.items():  # each at the compose service that answers it, on its own port
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.port) == ("http", service, SERVICES[service])
        assert compose["services"][service]["environment"]["AVATAR_PORT"] == str(SERVICES[service])


def test_gateway_settings_parse_from_its_compose_environment(avatar_services, monkeypatch):
    env = avatar_services["gateway"]["environment"]
    settings = settings_from(env, GatewaySettings, monkeypatch)
    assert settings.env != "local" and settings.listen_port == 8000
    assert {s: settings.upstream(s) for s in UPSTREAMS} == {s: f"http://{s}:{SERVICES[s]}" for s in UPSTREAMS}
    # it runs as its own non-owner role; the owner migrates and grants that role its rights
    runtime, owner = urlsplit(settings.postgres_url), urlsplit(settings.postgres_admin_url)
    assert runtime.username == GATEWAY_ROLE and owner.username not in (None, GATEWAY_ROLE)
    assert (runtime.hostname, runtime.path) == (owner.hostname, owner.path) == ("postgres", "/avatar")
    assert urlsplit(settings.rabbitmq_url).username == "avatar-gateway"
    assert settings.bootstrap_admin and settings.bootstrap_admin_password
    assert settings.secrets_key == env["AVATAR_SECRETS_KEY"] and settings.public_url.startswith("http")
    assert settings.jwt_jwks_url is None, "the gateway signs the RS256 tokens; it does not fetch its own keys"
    assert settings.oidc_issuer is None, "no OIDC unless gateway-oidc.env configures it"


def test_gateway_oidc_example_configures_oidc(avatar_services, monkeypatch):
    oidc = load_env_file(OIDC_EXAMPLE)
    assert {"AVATAR_OIDC_ISSUER", "AVATAR_OIDC_CLIENT_ID", "AVATAR_OIDC_CLIENT_SECRET", "AVATAR_OIDC_ROLE_MAP"} <= oidc.keys()
    assert oidc["AVATAR_OIDC_CLIENT_SECRET"].startswith("change-me")
    [entry] = avatar_services["gateway"]["env_file"]
    assert entry == {"path": "./gateway-oidc.env", "required": False}, "optional: local login works without it"
    assert "gateway-oidc.env" in (COMPOSE_DIR / ".gitignore").read_text().split()
    settings = settings_from(avatar_services["gateway"]["environment"], GatewaySettings, monkeypatch, oidc)
    assert settings.oidc_issuer.startswith("https://") and settings.oidc_role_map["avatar-admins"] == "admin"


def test_the_six_services_verify_the_gateways_tokens(avatar_services, monkeypatch):
    for name, svc in avatar_services.items():
        if name == "gateway":
            assert "AVATAR_JWT_JWKS_URL" not in svc["environment"]
            continue
        settings = settings_from(svc["environment"], Settings, monkeypatch)
        assert settings.jwt_jwks_url == JWKS_URL, name
        parts = urlsplit(JWKS_URL)
        assert (parts.hostname, parts.port) == ("gateway", SERVICES["gateway"])


def test_postgres_roles_provisions_the_gateway_role_with_the_shared_sql(compose, avatar_services):
    roles = compose["services"]["postgres-roles"]
    assert roles["restart"] == "no" and roles["image"] == compose["services"]["postgres"]["image"]
    assert roles["depends_on"]["postgres"]["condition"] == "service_healthy"
    [mount] = roles["volumes"]
    source, target = mount.split(":")[:2]
    assert (COMPOSE_DIR / source).resolve() == ROLE_SQL
    assert roles["command"][0] == "psql" and target in roles["command"] and "ON_ERROR_STOP=1" in roles["command"]
    # the owner makes the role; the role's password is the one the gateway connects with
    env = roles["environment"]
    runtime = urlsplit(avatar_services["gateway"]["environment"]["AVATAR_POSTGRES_URL"])
    owner = urlsplit(avatar_services["gateway"]["environment"]["AVATAR_POSTGRES_ADMIN_URL"])
    assert (env["PGUSER"], env["PGPASSWORD"]) == (owner.username, owner.password)
    assert env["AVATAR_GATEWAY_DB_PASSWORD"] == runtime.password
    assert "AVATAR_GATEWAY_DB_USER" not in env, "the SQL's default role is the one the gateway logs in as"
    assert re.search(rf"\\set role {GATEWAY_ROLE}\b", ROLE_SQL.read_text())


def test_broker_definitions_get_a_password_for_every_services_user(compose):
    """The one-shot renders a user for each service contracts/topology.py names (the gateway too)."""
    env = compose["services"]["rabbitmq-definitions"]["environment"]
    for service in SUBSCRIPTIONS:
        assert env.get(password_variable(service_user(service))), service
