"""Run the whole platform on this machine: local servers, an S3 server and the six services.

    python -m services.kit.stack up       # start what is down, wait until every /readyz is 200
    python -m services.kit.stack up --split trainer   # the trainer as its API and trainer-events (make up SPLIT=trainer)
    python -m services.kit.stack up --split trainer --background-nice 5   # ... the rest at nice 5 (make up SPLIT=trainer NICE=5)
    python -m services.kit.stack down     # stop what `up` started
    python -m services.kit.stack status

State (pids, logs, the environment the services got) lives in .run/.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from services.kit.db import ensure_database
from services.kit.priority import lower_priority
from services.kit.settings import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("library", "builder", "trainer", "approval", "scheduler", "models")
GATEWAY = "gateway"  # the front door (services/gateway): started after the six, which it routes to
PLATFORM = (*SERVICES, GATEWAY)
# the gateway's own database role: its audit log is append-only for it (services/gateway/migrations/restrictions.sql)
GATEWAY_DB_ROLE = "avatar_gateway"
EVENTS_SUFFIX = "-events"  # the process name of a split service's event side: event_side(name)
EVENTS_PORT_OFFSET = 100  # `make up --split`: trainer 8003, trainer-events 8103

# How each loopback server is (re)started on this kind of machine (docs/architecture.md §9).
LOCAL_SERVERS = {
    "postgresql": (5432, "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"),
    "redis": (6379, "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no "
                    "--dir /var/lib/redis --logfile /var/log/redis/ci.log"),
    "rabbitmq": (5672, "rabbitmq-server -detached"),
}


def event_side(service: str) -> str:
    """The process name of a split service's event side (`trainer-events`)."""
    return f"{service}{EVENTS_SUFFIX}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.3)


def ensure_local_servers() -> None:
    for name, (port, command) in LOCAL_SERVERS.items():
        if port_open(port):
            continue
        print(f"starting {name} ...", flush=True)
        subprocess.run(command, shell=True, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: port_open(port), 90, f"{name} on port {port}")
    wait_for(_rabbit_ready, 90, "RabbitMQ to accept commands")


def _rabbit_ready() -> bool:
    return subprocess.run(["rabbitmqctl", "-q", "status"], capture_output=True).returncode == 0


def ensure_vhost(vhost: str, user: str = "guest") -> None:
    existing = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True).stdout.split()
    if vhost not in existing:
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"], check=True,
                   capture_output=True)


@dataclass
class Stack:
    run_dir: Path = ROOT / ".run"
    s3_port: int = 9000
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    database: str = "avatar"
    vhost: str = "avatar"
    extra_env: dict[str, str] = field(default_factory=dict)
    # settings for one service only, over the shared ones (e.g. tests give one service its own S3 endpoint)
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # services run as two processes (Settings.role): "<name>" answers HTTP on the service's port,
    # "<name>-events" consumes, relays and runs the background work (its port: ports["<name>-events"])
    split: tuple[str, ...] = ()
    # the CPU priority (nice, Settings.nice) of every process but the front door, the API part of a split
    # service (the S3 server included): on one machine, its requests are answered first and the saga's
    # background work takes the cores left (0: every process alike)
    background_nice: int = 0
    # more processes of a service, by process name (e.g. a second scheduler "scheduler-2" standing by):
    # each on a port of its own, with the service's settings (add_replica)
    replicas: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.split:
            if event_side(name) not in self.ports:
                self.ports[event_side(name)] = free_port()

    def processes(self, services: tuple[str, ...] = PLATFORM) -> tuple[str, ...]:
        """The processes that run `services`: one per service, two for a split one."""
        return tuple(process for name in services
                     for process in ((name, event_side(name)) if name in self.split else (name,)))

    def add_replica(self, service: str) -> str:
        """Name (and give a port to) one more process of `service`; start it with start_service(name)."""
        name = f"{service}-{sum(s == service for s in self.replicas.values()) + 2}"
        self.replicas[name] = service
        self.ports[name] = free_port()
        return name

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    def environment(self) -> dict[str, str]:
        env = {
            "AVATAR_ENV": "local",
            "AVATAR_POSTGRES_URL": f"postgresql://postgres@127.0.0.1:5432/{self.database}",
            "AVATAR_RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}",
            "AVATAR_REDIS_URL": "redis://127.0.0.1:6379/0",
            "AVATAR_S3_ENDPOINT": f"http://127.0.0.1:{self.s3_port}",
            "AVATAR_S3_ACCESS_KEY": "avatar-local",
            "AVATAR_S3_SECRET_KEY": "avatar-local-secret",
            "AVATAR_LIBRARY_URL": f"http://127.0.0.1:{self.ports['library']}",
            "AVATAR_BUILDER_URL": f"http://127.0.0.1:{self.ports['builder']}",
            "AVATAR_TRAINER_URL": f"http://127.0.0.1:{self.ports['trainer']}",
            "AVATAR_STACK_DIR": str(self.run_dir),
        }
        if GATEWAY in self.ports:  # the services verify the gateway's RS256 tokens against its keys
            env["AVATAR_JWT_JWKS_URL"] = f"{self.gateway_url}/api/auth/jwks.json"
        env.update(self.extra_env)
        return env

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[GATEWAY]}"

    def gateway_environment(self) -> dict[str, str]:
        """The gateway's own settings: where each service answers, and its database role apart from the owner's."""
        env = self.environment()
        owner = env["AVATAR_POSTGRES_URL"]
        return {
            "AVATAR_UPSTREAM_URLS": json.dumps({name: f"http://127.0.0.1:{self.ports[name]}" for name in SERVICES}),
            "AVATAR_POSTGRES_ADMIN_URL": owner,
            "AVATAR_POSTGRES_URL": owner.replace("://postgres@", f"://{GATEWAY_DB_ROLE}@", 1),
            "AVATAR_PUBLIC_URL": self.gateway_url,
            "AVATAR_BOOTSTRAP_ADMIN": "admin",
            "AVATAR_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password(),
        }

    def admin_password(self) -> str:
        """The local first admin's password: made once per run folder, kept in it (mode 0600)."""
        path = self.run_dir / "admin-password"
        if not path.exists():
            import secrets

            self.run_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(18))
        return path.read_text().strip()

    def _pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _alive(self, name: str) -> bool:
        try:
            pid = int(self._pidfile(name).read_text())
            os.kill(pid, 0)
            return True
        except (OSError, ValueError):
            return False

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")
        process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        self._pidfile(name).write_text(str(process.pid))
        return process.pid

    def start_s3(self) -> None:
        if self._alive("s3") or port_open(self.s3_port):
            return
        pid = self._spawn("s3", [sys.executable, "-m", "services.kit.s3server", "--host", "127.0.0.1",
                                 "--port", str(self.s3_port)],
                          {"AWS_ACCESS_KEY_ID": "avatar-local", "AWS_SECRET_ACCESS_KEY": "avatar-local-secret"})
        if self.background_nice:  # it serves the saga's background work (logs, models), not the front door
            lower_priority(pid, self.background_nice)
        wait_for(lambda: port_open(self.s3_port), 30, f"the S3 server on port {self.s3_port}")

    def start_service(self, name: str) -> None:
        """Start one process of `processes()`: a service, or one part of a split service."""
        if self._alive(name):
            return
        service = self.replicas.get(name) or name.removesuffix(EVENTS_SUFFIX)
        role = "events" if service != name and name not in self.replicas else \
            "api" if service in self.split and name not in self.replicas else "all"
        env = {**self.environment(), **(self.gateway_environment() if service == GATEWAY else {}),
               **self.service_env.get(service, {}), "AVATAR_PORT": str(self.ports[name]), "AVATAR_ROLE": role}
        if self.background_nice and role != "api" and service != GATEWAY:  # the gateway is the front door too
            env["AVATAR_NICE"] = str(self.background_nice)
        self._spawn(name, [sys.executable, "-m", f"services.{service}"], env)

    def ready(self, name: str) -> bool:
        if name not in self.ports:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[name]}/readyz", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def up(self, services: tuple[str, ...] = PLATFORM, timeout: float = 120) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ensure_local_servers()
        ensure_vhost(self.vhost)
        url = self.environment()["AVATAR_POSTGRES_URL"]
        # a thread of its own, so `up` also works when called from inside an event loop (tests)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, ensure_database(url)).result()
        self.start_s3()
        for name in self.processes(services):
            self.start_service(name)
        (self.run_dir / "env.json").write_text(json.dumps(self.environment(), indent=2))
        deadline = time.monotonic() + timeout
        for name in self.processes(services):
            while not self.ready(name):
                if not self._alive(name):
                    raise SystemExit(f"{name} exited during start; see {self.logs / (name + '.log')}:\n"
                                     + self.tail(name))
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name} not ready after {timeout:.0f}s; see {self.logs / (name + '.log')}:\n"
                                     + self.tail(name))
                time.sleep(0.3)
            print(f"  {name:<10} ready on http://127.0.0.1:{self.ports[name]}", flush=True)

    def tail(self, name: str, lines: int = 20) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self, name: str, sig: int = signal.SIGTERM, grace: float = 15) -> None:
        try:
            pid = int(self._pidfile(name).read_text())
        except (OSError, ValueError):
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while self._alive(name) and time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.1)
        if self._alive(name):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._pidfile(name).unlink(missing_ok=True)

    def down(self) -> None:
        # every part a split may have started, split now or not (a pidfile that is absent is skipped)
        for name in (GATEWAY, *SERVICES, *map(event_side, SERVICES), *self.replicas, "s3"):
            self.stop(name)

    def status(self) -> dict[str, str]:
        # an event side `up --split` started shows as well, split now or not
        started = tuple(name for name in map(event_side, SERVICES) if self._pidfile(name).exists())
        return {name: ("ready" if self.ready(name) else "running" if self._alive(name) else "stopped")
                for name in dict.fromkeys((*self.processes(), *started))}


def add_layout_options(parser: argparse.ArgumentParser) -> None:
    """--split and --background-nice: how the processes are laid out (`make up`, bench/bench_saga.py)."""
    parser.add_argument("--split", action="append", default=[], choices=SERVICES, metavar="SERVICE",
                        help="run SERVICE as two processes: its API, and its event side (<SERVICE>-events)")
    parser.add_argument("--background-nice", type=int, default=0, choices=range(20), metavar="0-19",
                        help="run every process but the API part of a split service at this CPU priority (nice)")


def parse_layout(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.background_nice and not args.split:
        parser.error("--background-nice needs --split: without a front door of its own, every API would be niced")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("up", "down", "status", "restart"))
    parser.add_argument("service", nargs="?", help="restart: the one service (or gateway) to stop and start again")
    add_layout_options(parser)
    args = parse_layout(parser, argv)
    stack = Stack(split=tuple(args.split), background_nice=args.background_nice, ports={
        **DEFAULT_PORTS, **{event_side(name): DEFAULT_PORTS[name] + EVENTS_PORT_OFFSET for name in SERVICES}})
    if args.command == "up":
        print("bringing AVATAR OnE up ...", flush=True)
        stack.up()
        print(f"all six services and the gateway are ready: {stack.gateway_url}", flush=True)
    elif args.command == "restart":
        if args.service not in PLATFORM:
            parser.error(f"restart needs one of: {', '.join(PLATFORM)}")
        stack.stop(args.service)
        stack.start_service(args.service)
        while not stack.ready(args.service):
            time.sleep(0.3)
        print(f"{args.service} restarted", flush=True)
    elif args.command == "down":
        stack.down()
        print("stopped", flush=True)
    else:
        for name, state in stack.status().items():
            print(f"{name:<10} {state}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
