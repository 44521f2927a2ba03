"""Settings from the environment only (AVATAR_*); default secrets are refused outside local runs."""
from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_JWT_SECRET = "avatar-local-only-jwt-secret-change-me"
LOCAL_S3_ACCESS_KEY = "avatar-local"
LOCAL_S3_SECRET_KEY = "avatar-local-secret"
# a fixed Fernet key for local runs only (services/kit/secrets.py); refused elsewhere like the others
LOCAL_SECRETS_KEY = "YXZhdGFyLWxvY2FsLW9ubHktc2VjcmV0cy1rZXktMDA="

DEFAULT_PORTS = {"gateway": 8000, "builder": 8001, "library": 8002, "trainer": 8003, "approval": 8004, "scheduler": 8005, "models": 8006}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AVATAR_", extra="ignore")

    service: str = ""
    env: Literal["local", "dev", "prod"] = "local"
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/avatar"
    # the role that creates the schema and runs the migrations, where the service itself connects as a
    # role with fewer rights (the gateway: its audit log is append-only for its own role); None: postgres_url
    postgres_admin_url: str | None = None
    postgres_pool_size: int = Field(default=10, ge=1, le=100)
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    redis_url: str = "redis://127.0.0.1:6379/0"
    s3_endpoint: str = "http://127.0.0.1:9000"
    s3_access_key: str = LOCAL_S3_ACCESS_KEY
    s3_secret_key: str = LOCAL_S3_SECRET_KEY
    s3_region: str = "us-east-1"
    staging_bucket: str = "avatar-staging"
    models_bucket: str = "avatar-models"
    logs_bucket: str = "avatar-logs"
    jwt_secret: str = LOCAL_JWT_SECRET
    jwt_public_key: str | None = None
    jwt_issuer: str = "avatar-one"
    # where the gateway publishes the keys it signs RS256 access tokens with (GET /api/auth/jwks.json): a
    # service verifies a token whose `kid` it names against that set, cached, refetched for a new kid
    jwt_jwks_url: str | None = None
    # the Fernet key secret env var values are encrypted with (builder, trainer: services/kit/secrets.py)
    secrets_key: str = LOCAL_SECRETS_KEY
    # this service's own identity towards another's internal routes (the scheduler resolving secrets): a
    # token with role "service" and subject the service's name; with HS256 tokens minted from AVATAR_JWT_SECRET
    service_token: str | None = None
    library_url: str = "http://127.0.0.1:8002"
    redis_prefix: str = "avatar:"
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    log_level: str = "INFO"
    # uvicorn's event loop and HTTP parser: "auto" takes uvloop and httptools (C, both pinned), "asyncio"
    # and "h11" the pure-Python ones
    event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    http_parser: Literal["auto", "h11", "httptools"] = "auto"
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    consumer_prefetch: int = Field(default=32, ge=1, le=1000)
    # delivered events handled together in one transaction, at most this many (1: each on its own), by
    # this many workers at once (see services.kit.messaging._Batches)
    consumer_batch_size: int = Field(default=16, ge=1, le=1000)
    consumer_batch_workers: int = Field(default=2, ge=1, le=32)
    # a batch worker starts a partial batch at most this often, and the outbox relay a partial round:
    # under load the events arriving meanwhile share one transaction (or one publish round) instead of
    # one each; a full batch or round starts at once, and an idle worker or relay takes a lone event at
    # once (bench/RESULTS.md, "floors under batches and relay rounds" and "floors that never cap")
    consumer_min_batch_seconds: float = Field(default=0.15, ge=0, le=5)
    outbox_min_round_seconds: float = Field(default=0.15, ge=0, le=5)
    # which part of the service this process runs: "all" of it; "api", HTTP only (no consumer, no outbox
    # relay, no background work: its outbox rows wake an "events" process's relay by NOTIFY), so that a
    # request never waits behind a batch of events on the same loop; "events", everything but the
    # service's routes (it still serves /healthz, /readyz and /metrics)
    role: Literal["all", "api", "events"] = "all"
    # this process's CPU priority on a machine it shares (0-19, as nice; services/kit/priority.py): on one
    # machine, the processes behind the front door run niced so that a submit never waits for a core
    # behind the saga's background work (`make up SPLIT=trainer NICE=5`); in Kubernetes each pod's CPU
    # request does this instead
    nice: int = Field(default=0, ge=0, le=19)
    # sent outbox rows, inbox records and trace contexts older than this are deleted (services/kit/retention.py)
    retention_days: float = Field(default=7.0, ge=1.0)
    retention_sweep_seconds: float = Field(default=3600.0, gt=0)
    # a request that finds PostgreSQL, Redis, RabbitMQ or S3 away answers 503 with this Retry-After
    # (services/kit/errors.py): about how long a restart or failover takes
    dependency_retry_after_seconds: int = Field(default=5, ge=1, le=3600)

    @model_validator(mode="after")
    def _no_default_secrets_outside_local(self) -> "Settings":
        if self.env == "local":
            return self
        defaults = []
        if self.jwt_public_key is None and self.jwt_secret == LOCAL_JWT_SECRET:
            defaults.append("AVATAR_JWT_SECRET")
        if self.s3_access_key == LOCAL_S3_ACCESS_KEY or self.s3_secret_key == LOCAL_S3_SECRET_KEY:
            defaults.append("AVATAR_S3_ACCESS_KEY/AVATAR_S3_SECRET_KEY")
        if defaults:
            raise ValueError(f"AVATAR_ENV={self.env} refuses the local default secrets: set {', '.join(defaults)}")
        return self

    @property
    def handles_events(self) -> bool:
        """This process consumes events, relays its outbox and runs the service's background work."""
        return self.role != "api"

    @property
    def serves_api(self) -> bool:
        return self.role != "events"

    @property
    def schema(self) -> str:
        return self.service

    @property
    def listen_port(self) -> int:
        return self.port or DEFAULT_PORTS.get(self.service, 8000)


ServiceSettings = TypeVar("ServiceSettings", bound=Settings)


def settings_for(kind: type[ServiceSettings], settings: Settings | None) -> ServiceSettings:
    """A service's own settings: read from the environment when none are given, else the shared ones
    (a test's, the stack's) with the service's fields at their defaults or from the environment."""
    if settings is None:
        return kind()
    if isinstance(settings, kind):
        return settings
    return kind(**settings.model_dump())
