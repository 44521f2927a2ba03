"""Mint a bearer token for local use:  python -m services.kit.token --user kim --role admin"""
from __future__ import annotations

import argparse

from services.kit.auth import ROLES, mint_token
from services.kit.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--user", required=True)
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument("--ttl", type=int, default=8 * 3600, help="lifetime in seconds")
    parser.add_argument("--private-key", help="PEM file for RS256 (default: HS256 with AVATAR_JWT_SECRET)")
    args = parser.parse_args(argv)
    private_key = open(args.private_key).read() if args.private_key else None
    print(mint_token(Settings(), args.user, args.role, ttl_seconds=args.ttl, private_key=private_key))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
