"""The `scim-bridge` command: serve, db upgrade, token create/list/revoke."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from .config import ConfigError, Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    overrides = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    return settings.model_copy(update=overrides) if overrides else settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app

    settings = _settings(args)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        proxy_headers=settings.public_url is not None,
    )
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from .store.migrate import upgrade

    settings = _settings(args)
    upgrade(settings.database_url)
    print(f"database schema is up to date ({settings.database_url.split('@')[-1]})")
    return 0


async def _with_tokens(settings: Settings, action: str, args: argparse.Namespace) -> int:
    from .auth import TokenStore
    from .store.db import Database
    from .store.migrate import ensure_schema

    database = Database(settings.database_url)
    try:
        await ensure_schema(database)
        tokens = TokenStore(database)
        if action == "create":
            token = await tokens.create(args.name, args.scope)
            print(token)
            print(
                f"token {args.name!r} ({args.scope}) created; it is shown only once. "
                "Give it to the IdP as its bearer token.",
                file=sys.stderr,
            )
        elif action == "list":
            for row in await tokens.list(args.scope):
                used = row["last_used"].isoformat() if row["last_used"] else "never"
                print(f"{row['name']}\tcreated {row['created'].isoformat()}\tlast used {used}")
        else:
            await tokens.revoke(args.name, args.scope)
            print(f"token {args.name!r} revoked")
        return 0
    finally:
        await database.dispose()


def _tokens(args: argparse.Namespace) -> int:
    return asyncio.run(_with_tokens(_settings(args), args.token_action, args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scim-bridge",
        description="SCIM 2.0 bridge that gives Coder nested groups.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML configuration file (default: $SCIM_BRIDGE_CONFIG; "
        "every key can also be set as SCIM_BRIDGE_<KEY>)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the SCIM server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.set_defaults(func=_serve)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_action", required=True)
    db_commands.add_parser("upgrade", help="migrate the schema to this version").set_defaults(
        func=_db_upgrade
    )

    token = commands.add_parser("token", help="bearer tokens for SCIM clients")
    token_commands = token.add_subparsers(dest="token_action", required=True)
    create = token_commands.add_parser("create", help="create a token (printed once)")
    create.add_argument("--name", required=True, help="who the token is for, e.g. okta")
    listing = token_commands.add_parser("list", help="list tokens by name")
    revoke = token_commands.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("name")
    for sub in (create, listing, revoke):
        sub.add_argument(
            "--scope", default="scim", choices=["scim", "admin"], help=argparse.SUPPRESS
        )
        sub.set_defaults(func=_tokens)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as error:
        print(f"scim-bridge: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # errors users can act on carry their own message
        from .auth import TokenError
        from .store.migrate import SchemaError

        if isinstance(error, TokenError | SchemaError):
            print(f"scim-bridge: {error}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
