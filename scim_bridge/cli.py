"""The `scim-bridge` command: serve, db upgrade, token create/list/revoke, tree, explain,
hierarchy check."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .config import DEFAULT_DATABASE_URL, ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from .coder.acl import TemplateAclPlan
    from .hierarchy.service import HierarchyService
    from .hierarchy.spec import HierarchySpec
    from .sync.engine import SyncEngine

T = TypeVar("T")


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    overrides = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    return settings.model_copy(update=overrides) if overrides else settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .logs import logging_config

    settings = _settings(args)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=logging_config(settings.log_format, settings.log_level),
        proxy_headers=settings.public_url is not None,
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoError, run_demo

    try:
        return run_demo(keep_running=args.keep_running, timeout=args.timeout)
    except DemoError as error:
        print(f"scim-bridge demo: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


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
            use = (
                "Send it as `Authorization: Bearer <token>` to /admin/api (docs/admin.md)."
                if args.scope == "admin"
                else "Give it to the IdP as its bearer token."
            )
            print(
                f"token {args.name!r} ({args.scope}) created; it is shown only once. {use}",
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


async def _with_hierarchy(
    settings: Settings, read: Callable[[HierarchyService], Awaitable[T]]
) -> T:
    """Open the configured database (SQLite migrates itself, as for `token`) and read."""
    from .hierarchy.engine import Inheritance
    from .hierarchy.service import HierarchyService
    from .store.db import Database
    from .store.migrate import ensure_schema

    database = Database(settings.database_url)
    try:
        await ensure_schema(database)
        return await read(HierarchyService(database, Inheritance(database), settings.hierarchy))
    finally:
        await database.dispose()


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _tree(args: argparse.Namespace) -> int:
    from .admin.render import render_tree

    view = asyncio.run(_with_hierarchy(_settings(args), lambda h: h.tree_view()))
    if args.json:
        _print_json(view)
    else:
        print(render_tree(view))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from .admin.render import render_explain

    view = asyncio.run(
        _with_hierarchy(_settings(args), lambda h: h.user_view(args.user, args.group))
    )
    if args.json:
        _print_json(view)
    else:
        print(render_explain(view, args.group))
    return 0


def _database_configured(settings: Settings) -> bool:
    """A database was named (file or environment), or the default SQLite file exists."""
    if "database_url" in settings.model_fields_set:
        return True
    return Path(DEFAULT_DATABASE_URL.removeprefix("sqlite:///")).is_file()


def _missing_sqlite_file(database_url: str) -> str | None:
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return None if Path(str(url.database)).is_file() else str(url.database)


async def _check_with_database(settings: Settings, spec: HierarchySpec) -> list[str]:
    from .admin.check import check_against_database
    from .store.db import Database
    from .store.migrate import ensure_schema

    database = Database(settings.database_url)
    try:
        await ensure_schema(database)
        report = await check_against_database(database, spec, settings.hierarchy.naming_delimiter)
    finally:
        await database.dispose()
    for note in report.notes:
        print(note)
    return report.problems


def _hierarchy_check(args: argparse.Namespace) -> int:
    from .admin.check import summarize
    from .hierarchy.spec import HierarchyError, load_spec

    try:
        spec = load_spec(args.file)
    except HierarchyError as error:
        print(f"scim-bridge: {error}", file=sys.stderr)
        return 1
    print(f"{args.file} is valid on its own: {summarize(spec)}")
    if args.no_database:
        return 0
    settings = _settings(args)
    missing = _missing_sqlite_file(settings.database_url)
    if not _database_configured(settings):
        print(
            "no database configured (database_url unset, no ./scim-bridge.db): checked the file "
            "alone, not against the provisioned groups"
        )
        return 0
    if missing is not None:
        print(
            f"database file {missing} does not exist: checked the file alone, not against the "
            "provisioned groups"
        )
        return 0
    problems = asyncio.run(_check_with_database(settings, spec))
    for problem in problems:
        print(f"scim-bridge: {problem}", file=sys.stderr)
    return 1 if problems else 0


async def _with_engine(args: argparse.Namespace, action: str) -> int:
    import json

    from .store.db import Database
    from .store.migrate import ensure_schema
    from .sync.engine import build_engine

    settings = _settings(args)
    database = Database(settings.database_url)
    try:
        await ensure_schema(database)
        engine = build_engine(database, settings.coder)
        try:
            if action == "plan":
                plan, _, names, organization_id = await engine.plan(full=True)
                held = engine.failsafe(plan)
                mapping = (
                    await engine.plan_mapping(organization_id)
                    if settings.coder.mode == "mapping"
                    else None
                )
                templates, template_error = await _template_plan(engine, organization_id)
                if args.json:
                    body = {**plan.as_json(), "failsafe": held}
                    if mapping is not None:
                        body["mapping"] = mapping.describe()
                    if engine.templates.enabled:
                        body["template_acls"] = templates.as_json() if templates else None
                        body["template_acl_changes"] = templates.corrections() if templates else []
                        body["template_errors"] = [template_error] if template_error else []
                    print(json.dumps(body, indent=2))
                    return 0 if template_error is None else 1
                lines = plan.describe(names) + (mapping.describe() if mapping else [])
                lines += templates.describe() if templates else []
                if lines or template_error is None:
                    print("\n".join(lines) if lines else "nothing to change: Coder is in sync")
                for reason in held:
                    print(f"! the failsafe would hold this sync: {reason}")
                for warning in templates.warnings if templates else []:
                    print(f"! {warning}")
                if template_error is not None:
                    print(f"scim-bridge: {template_error}", file=sys.stderr)
                    return 1
                return 0
            report = await engine.sync(full=True, approve=args.approve)
        finally:
            await engine.release_lease()  # a one-shot run must not block the server's worker
            await engine.client.aclose()
    finally:
        await database.dispose()
    for line in report.changes:
        print(line)
    for line in report.template_corrections:
        print(f"~ {line}")
    for line in report.template_drift:
        print(f"? {line}")
    for reason in report.held:
        print(f"held by the failsafe: {reason}\nrun `scim-bridge sync --approve` to apply it")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for failure in report.failures + report.template_errors:
        print(f"failed: {failure}", file=sys.stderr)
    if report.skipped:
        print(f"skipped: {report.skipped}", file=sys.stderr)
    if report.clean:
        checked = f", {report.templates_checked} templates" if report.templates_checked else ""
        print(f"in sync ({report.writes} write calls, {report.groups_in_scope} groups{checked})")
    return 0 if report.clean else 1


async def _template_plan(
    engine: SyncEngine, organization_id: str
) -> tuple[TemplateAclPlan | None, str | None]:
    """The template ACL plan (None when no department is configured) or why there is none."""
    from .coder.acl import TemplateIsolationError
    from .coder.client import CoderError

    if not engine.templates.enabled:
        return None, None
    try:
        return await engine.templates.plan(organization_id), None
    except (TemplateIsolationError, CoderError) as error:
        return None, f"template isolation: {error}"


def _sync(args: argparse.Namespace) -> int:
    return asyncio.run(_with_engine(args, "sync"))


def _plan(args: argparse.Namespace) -> int:
    return asyncio.run(_with_engine(args, "plan"))


def _export_mapping(args: argparse.Namespace) -> int:
    from .coder.client import CoderError
    from .coder.export import ExportError, export_mapping

    settings = _settings(args)
    try:
        exported = asyncio.run(export_mapping(settings))
    except (ExportError, CoderError) as error:
        print(f"scim-bridge: cannot export the mapping: {error}", file=sys.stderr)
        return 1
    for note in exported.notes:
        print(f"note: {note}", file=sys.stderr)
    text = json.dumps(exported.settings, indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    Path(args.output).write_text(text)
    keys = len(exported.settings["mapping"])
    print(
        f"wrote the group-sync settings ({keys} claim values) to {args.output}; apply them "
        f"with: coder organizations settings set group-sync --org "
        f"{settings.coder.organization} < {args.output} (this replaces the organization's "
        "whole group-sync settings)",
        file=sys.stderr,
    )
    return 0


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

    demo = commands.add_parser(
        "demo",
        help="see the whole flow on this machine: the bridge and a Coder double on 127.0.0.1, "
        "an organisation provisioned as Okta does, the Coder groups it gives (no licence needed)",
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="keep both servers up afterwards (with curl commands to try) until Ctrl-C",
    )
    demo.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the sync to Coder (default 60)",
    )
    demo.set_defaults(func=_demo)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_action", required=True)
    db_commands.add_parser("upgrade", help="migrate the schema to this version").set_defaults(
        func=_db_upgrade
    )

    token = commands.add_parser(
        "token", help="bearer tokens for SCIM clients (IdPs) and for the admin API"
    )
    token_commands = token.add_subparsers(dest="token_action", required=True)
    create = token_commands.add_parser("create", help="create a token (printed once)")
    create.add_argument("--name", required=True, help="who the token is for, e.g. okta")
    listing = token_commands.add_parser("list", help="list tokens by name")
    revoke = token_commands.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("name")
    for sub in (create, listing, revoke):
        sub.add_argument(
            "--scope",
            default="scim",
            choices=["scim", "admin"],
            help="scim (the default): for an IdP, on /scim/v2; admin: for the admin API on "
            "/admin/api (docs/admin.md). Neither works on the other's routes",
        )
        sub.set_defaults(func=_tokens)

    tree = commands.add_parser(
        "tree", help="print the group tree with member counts and where each edge comes from"
    )
    tree.add_argument("--json", action="store_true", help="print the tree as JSON")
    tree.set_defaults(func=_tree)

    explain = commands.add_parser(
        "explain", help="why a user is in each group: direct, via subgroups, or by cascade"
    )
    explain.add_argument("user", metavar="USER", help="id, userName or externalId")
    explain.add_argument(
        "group", metavar="GROUP", nargs="?", help="only this group (id, displayName or externalId)"
    )
    explain.add_argument("--json", action="store_true", help="print the explanation as JSON")
    explain.set_defaults(func=_explain)

    hierarchy = commands.add_parser("hierarchy", help="the hierarchy file")
    hierarchy_commands = hierarchy.add_subparsers(dest="hierarchy_action", required=True)
    check = hierarchy_commands.add_parser(
        "check",
        help="validate a hierarchy file, and check it against the provisioned groups "
        "(cycles, groups not provisioned yet) without applying it",
    )
    check.add_argument("file", metavar="FILE", help="the hierarchy file (YAML)")
    check.add_argument(
        "--no-database",
        action="store_true",
        help="check the file alone, even when a database is configured",
    )
    check.set_defaults(func=_hierarchy_check)

    sync = commands.add_parser(
        "sync", help="write the tree into Coder now (a full resync), then exit"
    )
    sync.add_argument(
        "--approve",
        action="store_true",
        help="apply a sync the failsafe holds (it removes many members at once)",
    )
    sync.set_defaults(func=_sync)
    plan = commands.add_parser(
        "plan", help="print what a sync would change in Coder, apply nothing"
    )
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(func=_plan)

    export = commands.add_parser(
        "export-mapping",
        help="print Coder's group-sync settings for mapping mode as JSON, for `coder "
        "organizations settings set group-sync`",
    )
    export.add_argument(
        "--output", metavar="FILE", help="write the JSON to FILE instead of standard output"
    )
    export.set_defaults(func=_export_mapping)
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
        from sqlalchemy.exc import OperationalError

        from .coder.client import CoderError
        from .hierarchy.service import NotFound
        from .hierarchy.spec import HierarchyError
        from .store.migrate import SchemaError
        from .sync.engine import SyncBlocked

        if isinstance(error, SchemaError | HierarchyError | NotFound | CoderError | SyncBlocked):
            print(f"scim-bridge: {error}", file=sys.stderr)
            return 1
        if isinstance(error, OperationalError):
            print(
                f"scim-bridge: cannot use the database: {str(error.orig).strip()}\n"
                "check database_url (or SCIM_BRIDGE_DATABASE_URL) and that the database is up",
                file=sys.stderr,
            )
            return 1
        from .auth import TokenError  # only now: authlib is slow to import and warns

        if isinstance(error, TokenError):
            print(f"scim-bridge: {error}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
