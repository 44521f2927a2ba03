"""Accounts from the command line, for the first admin and for getting back in:

    python -m services.gateway.cli create-admin --user U [--display-name N] [--email E] [--password-env NAME]
    python -m services.gateway.cli set-password --user U [--password-env NAME]
    python -m services.gateway.cli deactivate --user U

The password is read from stdin (one line; prompted without echo on a terminal) or from the environment
variable --password-env names, never from the command line (it would show in `ps` and shell history).
It connects with AVATAR_POSTGRES_ADMIN_URL (or AVATAR_POSTGRES_URL) and applies the gateway's migrations
first, so it works before the gateway has ever started. A running gateway sees a deactivation within
AVATAR_IDENTITY_CACHE_SECONDS.
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from services.gateway import accounts, passwords
from services.gateway.settings import GatewaySettings
from services.kit.auth import Subject
from services.kit.db import KIT_MIGRATIONS, apply_migrations, create_pool, ensure_database
from services.kit.errors import DomainError

CLI_ACTOR = "cli"  # updated_by / created_by on the row; the audit record names the OS user too
MIGRATIONS = Path(__file__).parent / "migrations"  # as main.py's, without building the app


def _password(args: argparse.Namespace, settings: GatewaySettings) -> str:
    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            raise SystemExit(f"the environment variable {args.password_env} is not set or empty")
    elif sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise SystemExit("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    accounts.check_password(password, min_length=settings.min_password_length, user_id=args.user)
    return password


async def _run(args: argparse.Namespace, settings: GatewaySettings) -> str:
    url = settings.postgres_admin_url or settings.postgres_url
    if settings.env == "local":
        await ensure_database(url)
    pool = await create_pool(url, settings.schema, max_size=1)
    try:
        await apply_migrations(pool, settings.schema, {"kit": KIT_MIGRATIONS, "gateway": MIGRATIONS})
        operator = f"cli:{getpass.getuser()}"
        async with pool.acquire() as conn:
            if args.command == "create-admin":
                hashed = await passwords.hash_password(_password(args, settings))
                async with conn.transaction():
                    row = await accounts.create(conn, user_id=args.user, display_name=args.display_name or args.user,
                                                email=args.email, role="admin", kind="person", password_hash=hashed,
                                                by=CLI_ACTOR)
                    await accounts.record_change(conn, action="user.create", user_id=args.user, before=None,
                                                 after=row, by=operator)
                return f"created admin '{args.user}'"
            if args.command == "set-password":
                hashed = await passwords.hash_password(_password(args, settings))
                async with conn.transaction():
                    await accounts.set_password(conn, args.user, hashed, by=CLI_ACTOR)
                    await accounts.record_change(conn, action="user.password_set", user_id=args.user, before=None,
                                                 after={"password": "set"}, by=operator)
                return f"set the password of '{args.user}'; their open sessions ended"
            async with conn.transaction():
                before, after = await accounts.deactivate(conn, args.user, by=CLI_ACTOR)
                await accounts.record_change(conn, action="user.deactivate", user_id=args.user, before=before,
                                             after=after, by=operator)
            return f"deactivated '{args.user}'; their sessions ended and their tokens are refused"
    finally:
        await pool.close()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m services.gateway.cli", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-admin", help="create a local admin")
    create.add_argument("--display-name")
    create.add_argument("--email")
    password = commands.add_parser("set-password", help="set a local user's password")
    deactivate = commands.add_parser("deactivate", help="deactivate a user")
    for command in (create, password, deactivate):
        command.add_argument("--user", required=True, help="the user's id")
    for command in (create, password):
        command.add_argument("--password-env", metavar="NAME", help="read the password from this environment variable")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        TypeAdapter(Subject).validate_python(args.user)
    except ValidationError:
        print(f"error: {args.user!r} is not a valid user id", file=sys.stderr)
        return 2
    settings = GatewaySettings().model_copy(update={"service": "gateway"})
    try:
        print(asyncio.run(_run(args, settings)))
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
