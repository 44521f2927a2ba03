"""Settings of the gateway (env AVATAR_*), on top of the platform's."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from services.kit.settings import DEFAULT_PORTS, Settings

ROOT = Path(__file__).resolve().parents[2]
UPSTREAMS = ("builder", "library", "trainer", "approval", "scheduler", "models")
Role = Literal["admin", "researcher", "viewer"]


class GatewaySettings(Settings):
    # where each service answers: {"trainer": "http://10.0.0.5:8003", ...}; a service not named is on loopback at its port
    upstream_urls: dict[str, str] = Field(default_factory=dict)
    upstream_timeout_seconds: float = Field(default=60.0, gt=0)
    upstream_connections: int = Field(default=100, ge=1, le=10_000)
    # the console's built files (console/dist); served at / when the folder exists
    console_dir: Path = ROOT / "console" / "dist"
    # the address people reach the gateway at: OIDC redirect and cookie security derive from it
    public_url: str = "http://127.0.0.1:8000"

    # browser sessions (services/gateway/sessions.py)
    session_cookie: str = "avatar_session"
    csrf_cookie: str = "avatar_csrf"
    csrf_header: str = "X-CSRF-Token"
    session_ttl_seconds: int = Field(default=12 * 3600, ge=60)
    session_idle_seconds: int = Field(default=2 * 3600, ge=60)
    # how long the gateway trusts what it looked up about a session, token or user: a deactivation, a
    # revocation or a role change is seen by every request at most this much later
    identity_cache_seconds: float = Field(default=2.0, ge=0, le=60)

    # local login (services/gateway/accounts.py): failures before a pause, per user and per address, in a window
    login_max_failures_per_user: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1)
    min_password_length: int = Field(default=12, ge=8, le=1024)
    # a first admin from the environment (or `python -m services.gateway.cli create-admin`); there is no
    # default password outside AVATAR_ENV=local
    bootstrap_admin: str | None = None
    bootstrap_admin_password: str | None = None

    # OIDC login (services/gateway/oidc.py): none unless an issuer is set
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scopes: str = "openid profile email"
    oidc_groups_claim: str = "groups"
    # IdP group → platform role, e.g. {"avatar-admins": "admin", "ml-team": "researcher"}; the highest wins
    oidc_role_map: dict[str, Role] = Field(default_factory=dict)
    # the role of a user none of whose groups is mapped (None: such a user may not log in)
    oidc_default_role: Role | None = "viewer"
    oidc_display_name: str = "Single sign-on"

    # access tokens the gateway signs for the services (services/gateway/signing.py)
    access_token_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    # a retired signing key stays in the JWKS this long, so tokens it signed still verify until they expire
    signing_key_overlap_seconds: int = Field(default=900, ge=0)

    # rate limits (services/gateway/ratelimit.py), as `limits` strings
    rate_limit_user: str = "1200/minute"
    rate_limit_address: str = "2400/minute"
    rate_limit_login: str = "30/minute"
    rate_limits_enabled: bool = True

    # live events (services/gateway/events.py)
    events_stream_length: int = Field(default=10_000, ge=100)
    events_heartbeat_seconds: float = Field(default=15.0, gt=0)
    events_max_clients: int = Field(default=2000, ge=1)

    # audit log (services/gateway/audit.py): rows older than this are removed by the retention job
    audit_retention_days: int = Field(default=400, ge=1)

    @model_validator(mode="after")
    def _upstreams_known(self) -> "GatewaySettings":
        unknown = set(self.upstream_urls) - set(UPSTREAMS)
        if unknown:
            raise ValueError(f"AVATAR_UPSTREAM_URLS names unknown services {sorted(unknown)}; known: {', '.join(UPSTREAMS)}")
        if self.env != "local" and self.bootstrap_admin and not self.bootstrap_admin_password:
            raise ValueError("AVATAR_BOOTSTRAP_ADMIN needs AVATAR_BOOTSTRAP_ADMIN_PASSWORD outside AVATAR_ENV=local")
        return self

    def upstream(self, service: str) -> str:
        return self.upstream_urls.get(service, f"http://127.0.0.1:{DEFAULT_PORTS[service]}").rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        return self.env != "local" or self.public_url.startswith("https://")
