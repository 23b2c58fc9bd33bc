"""Benchmark of the SCIM service: scim-bridge on SQLite and PostgreSQL vs scim2-server in memory.

One run:

1. checks that the bulk preload writes exactly what ``SqlScimStorage.create`` writes;
2. preloads the dataset (default 100,000 users, 5,000 groups of 20 members) into a SQLite file,
   a scratch PostgreSQL database and a JSON-lines file for the in-memory reference, and a small
   dataset (default 1,000 users) the same way;
3. for each server, starts it as a subprocess on 127.0.0.1 (scim-bridge with uvicorn; the
   in-memory reference is scim2-server's test server), measures each operation over HTTP
   with a few concurrent httpx workers, a bounded number of requests and a time limit, and
   stops it;
4. prints median, p99 and throughput per operation, each operation's ratio to the in-memory
   reference (scim-bridge median / in-memory median) and the filtered GET's ratio between the
   big and the small dataset.

Example (a small run takes seconds)::

    python -m bench.scim_bench --users 2000 --groups 100 --small-users 200 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from scim_bridge.auth import TokenStore
from scim_bridge.store.db import Database
from scim_bridge.store.migrate import upgrade

from .dataset import Dataset, group_name, patch_add_member, user_name, user_payload
from .load import Call, Measurement, measure
from .preload import MemorySink, PostgresSink, Sink, SqliteSink, preload, scratch_postgres

BACKENDS = ("sqlite", "postgresql", "memory")
LABELS = {
    "sqlite": "scim-bridge / SQLite",
    "postgresql": "scim-bridge / PostgreSQL",
    "memory": "scim2-server in-memory",
}
POST_USERS = "POST /Users"
FILTER_USERS = 'GET /Users?filter=userName eq "…"'
PATCH_GROUP = "PATCH /Groups/{id} (add 1 member)"
FILTER_GROUPS = 'GET /Groups?filter=displayName eq "…"&excludedAttributes=members'
PAGE_USERS = "GET /Users?startIndex=…&count=100"
OPERATIONS = (FILTER_USERS, FILTER_GROUPS, PAGE_USERS, POST_USERS, PATCH_GROUP)
SHORT = {
    FILTER_USERS: "filter-users",
    FILTER_GROUPS: "filter-groups",
    PAGE_USERS: "page-users",
    POST_USERS: "post-users",
    PATCH_GROUP: "patch-group",
}


@dataclass
class Scale:
    """One dataset and where it was preloaded."""

    label: str
    dataset: Dataset
    urls: dict[str, str] = field(default_factory=dict)  # backend → database URL or data file
    preload_seconds: float = 0.0


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    token: str


# -- servers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _create_token(database_url: str) -> str:
    database = Database(database_url)
    try:
        return await TokenStore(database).create(f"bench-{secrets.token_hex(4)}")
    finally:
        await database.dispose()


def _wait_ready(server: Server, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {server.token}"}
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited ({server.process.returncode}); see {log}")
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(f"{server.base_url}/ServiceProviderConfig", headers=headers)
            if response.status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within {timeout:.0f} s; see {log}")


@contextlib.contextmanager
def run_server(
    backend: str, location: str, workdir: Path, tag: str, *, pin_generics: bool = False
) -> Iterator[Server]:
    """scim-bridge (`scim-bridge serve`, uvicorn) or the in-memory test server, on 127.0.0.1."""
    port = free_port()
    log = workdir / f"server-{backend}-{tag}.log"
    env = dict(os.environ)
    if backend == "memory":
        token = secrets.token_urlsafe(24)
        command = [
            sys.executable,
            "-m",
            "bench.inmemory_server",
            "--data",
            location,
            "--port",
            str(port),
            "--bearer-token",
            token,
        ]
        base_url = f"http://127.0.0.1:{port}/v2"
    else:
        token = asyncio.run(_create_token(location))
        command = [
            sys.executable,
            "-m",
            "bench.pinned_server" if pin_generics else "scim_bridge.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        env.update(SCIM_BRIDGE_DATABASE_URL=location, SCIM_BRIDGE_LOG_LEVEL="warning")
        base_url = f"http://127.0.0.1:{port}/scim/v2"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )
    server = Server(process, base_url, token)
    try:
        _wait_ready(server, log, timeout=600)
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def py_spy(pid: int, output: Path | None) -> Iterator[None]:
    """Sample ``pid`` with py-spy (collapsed stacks) while the block runs, if ``output``."""
    if output is None:
        yield
        return
    recorder = subprocess.Popen(
        [
            "py-spy",
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "250",
            "--nonblocking",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # let it attach
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        try:
            recorder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            recorder.kill()


# -- operations ---------------------------------------------------------------------------


def _total_is(expected: int) -> Callable[[httpx.Response], str | None]:
    def check(response: httpx.Response) -> str | None:
        body = response.json()
        if body.get("totalResults") != expected:
            return f"totalResults {body.get('totalResults')}, expected {expected}"
        if any("members" in r for r in body.get("Resources", [])):
            return "members were returned although excluded"
        return None

    return check


def _page_of(count: int) -> Callable[[httpx.Response], str | None]:
    def check(response: httpx.Response) -> str | None:
        found = len(response.json().get("Resources", []))
        return None if found == count else f"{found} resources, expected {count}"

    return check


def make_operations(dataset: Dataset, seed: int) -> dict[str, Callable[[int], Call]]:
    """For each operation, call ``i`` (negative: a warm-up call, whose response is checked)."""
    user_ids, group_ids = dataset.user_ids(), dataset.group_ids()
    users, groups = dataset.users, dataset.groups

    def rng(name: str) -> random.Random:
        return random.Random(f"{seed}:{name}")

    filter_rng, patch_rng = rng("filter"), rng("patch")
    group_rng, page_rng = rng("group"), rng("page")
    added: dict[int, set[int]] = {}

    def post_user(i: int) -> Call:
        index = i + 1_000_000  # warm-up calls are negative: keep every index distinct
        return Call("POST", "/Users", body=user_payload(index, prefix="new"), expect=(201,))

    def filter_users(i: int) -> Call:
        name = user_name(filter_rng.randrange(users))
        return Call(
            "GET",
            "/Users",
            params={"filter": f'userName eq "{name}"'},
            check=_total_is(1) if i < 0 else None,
        )

    def patch_group(i: int) -> Call:
        group = patch_rng.randrange(groups)
        taken = added.setdefault(group, set(dataset.member_indexes(group)))
        user = patch_rng.randrange(users)
        while user in taken:
            user = patch_rng.randrange(users)
        taken.add(user)
        # RFC 7644 §3.5.2: 200 with the group, or 204 (scim2-server's in-memory default).
        body = patch_add_member(user_ids[user])
        return Call("PATCH", f"/Groups/{group_ids[group]}", body=body, expect=(200, 204))

    def filter_groups(i: int) -> Call:
        name = group_name(group_rng.randrange(groups))
        params = {"filter": f'displayName eq "{name}"', "excludedAttributes": "members"}
        return Call("GET", "/Groups", params=params, check=_total_is(1) if i < 0 else None)

    def page_users(i: int) -> Call:
        count = min(100, users)
        start = page_rng.randint(1, users - count + 1)
        return Call(
            "GET",
            "/Users",
            params={"startIndex": start, "count": count},
            check=_page_of(count) if i < 0 else None,
        )

    return {
        FILTER_USERS: filter_users,
        FILTER_GROUPS: filter_groups,
        PAGE_USERS: page_users,
        POST_USERS: post_user,
        PATCH_GROUP: patch_group,
    }


async def _measure_all(
    server: Server,
    dataset: Dataset,
    names: list[str],
    args: argparse.Namespace,
    profile: Callable[[str], Path | None],
) -> list[Measurement]:
    calls = make_operations(dataset, args.seed)
    results = []
    limits = httpx.Limits(max_connections=args.workers, max_keepalive_connections=args.workers)
    async with httpx.AsyncClient(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=120,
        limits=limits,
    ) as client:
        for name in names:
            with py_spy(server.process.pid, profile(name)):
                result = await measure(
                    client,
                    name,
                    calls[name],
                    workers=args.workers,
                    requests=args.requests,
                    seconds=args.seconds,
                    warmup=args.warmup,
                )
            results.append(result)
            print(f"    {name:<66} {_row(result)}", flush=True)
            if result.errors:
                raise RuntimeError(f"{result.errors} errors, the first: {result.first_error}")
    return results


def _row(result: Measurement) -> str:
    return (
        f"median {result.median_ms:8.2f} ms  p99 {result.p99_ms:8.2f} ms  "
        f"{result.throughput:8.1f} req/s  ({result.count} requests)"
    )


# -- the run ------------------------------------------------------------------------------


def environment(pg_url: str | None) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                facts["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        root = Path(__file__).resolve().parent.parent
        git = ["git", "-C", str(root)]
        facts["commit"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            [*git, "status", "--porcelain", "--", "scim_bridge"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        facts["scim_bridge_uncommitted_changes"] = bool(changed.strip())
    if pg_url:
        import psycopg

        with contextlib.suppress(psycopg.Error), psycopg.connect(pg_url) as connection:
            row = connection.execute("SHOW server_version").fetchone()
            facts["postgresql"] = row[0] if row else None
    return facts


def _preload_scale(
    scale: Scale,
    backends: list[str],
    workdir: Path,
    stack: contextlib.ExitStack,
    args: argparse.Namespace,
) -> None:
    sinks: list[Sink] = []
    if "sqlite" in backends:
        path = workdir / f"bridge-{scale.label}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
        upgrade(url)
        sinks.append(SqliteSink(url))
        scale.urls["sqlite"] = url
    if "postgresql" in backends:
        url = stack.enter_context(scratch_postgres(args.pg_url, scale.label, keep=args.keep))
        upgrade(url)
        sinks.append(PostgresSink(url))
        scale.urls["postgresql"] = url
    if "memory" in backends:
        path = workdir / f"memory-{scale.label}.jsonl"
        sinks.append(MemorySink(path))
        scale.urls["memory"] = str(path)
    total = scale.dataset.users + scale.dataset.groups
    started = time.perf_counter()
    last = [0.0]

    def progress(done: int) -> None:
        if time.perf_counter() - last[0] > 10 or done == total:
            last[0] = time.perf_counter()
            print(f"    {done}/{total} resources, {last[0] - started:.0f} s", flush=True)

    preload(
        scale.dataset,
        sinks,
        memory="memory" in backends,
        processes=args.processes,
        progress=progress,
    )
    scale.preload_seconds = time.perf_counter() - started


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scim_bench",
        description="Latency and throughput of scim-bridge (SQLite, PostgreSQL) over HTTP, "
        "against scim2-server's in-memory test server with the same data.",
    )
    scale = parser.add_argument_group("data")
    scale.add_argument("--users", type=int, default=100_000, help="users to preload (100000)")
    scale.add_argument("--groups", type=int, default=5_000, help="groups to preload (5000)")
    scale.add_argument("--members", type=int, default=20, help="users per group (20)")
    scale.add_argument(
        "--small-users",
        type=int,
        default=1_000,
        help="users of the small dataset the filtered GET is also measured on "
        "(1000; its groups scale alike); 0: skip",
    )
    scale.add_argument("--seed", type=int, default=7)
    load = parser.add_argument_group("load")
    load.add_argument("--workers", type=int, default=4, help="concurrent HTTP clients (4)")
    load.add_argument(
        "--requests",
        type=int,
        default=2_000,
        help="at most this many measured requests per operation (2000)",
    )
    load.add_argument(
        "--seconds", type=float, default=30, help="at most this long per operation, in seconds (30)"
    )
    load.add_argument(
        "--warmup",
        type=int,
        default=10,
        help="unmeasured, checked requests before each operation (10)",
    )
    where = parser.add_argument_group("servers")
    where.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated, of: sqlite, postgresql, memory (all)",
    )
    where.add_argument(
        "--pg-url",
        default=os.environ.get("SCIM_BRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL URL allowed to create and drop databases (scratch databases are "
        "created beside it)",
    )
    where.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/scim-bench"),
        help="SQLite files, in-memory data and server logs (/tmp/scim-bench)",
    )
    where.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="processes building preload rows (nproc)",
    )
    where.add_argument(
        "--keep", action="store_true", help="keep the PostgreSQL databases (their URLs are printed)"
    )
    where.add_argument(
        "--skip-check",
        action="store_true",
        help="skip checking the bulk preload against SqlScimStorage.create",
    )
    where.add_argument(
        "--pin-generics",
        action="store_true",
        help="experiment: serve scim-bridge through bench.pinned_server, which keeps "
        "scim2-server's per-request generic models alive (see that module)",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--json", type=Path, help="write every figure to this JSON file")
    out.add_argument("--markdown", type=Path, help="write the result tables to this file")
    out.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record each scim-bridge operation with py-spy (collapsed stacks) "
        "into DIR; profiled figures are slower, do not report them",
    )
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    if args.small_users and args.small_users < args.members:
        parser.error("--small-users must be at least --members")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    pg_url = args.pg_url if "postgresql" in args.backends else None
    facts = environment(pg_url)
    print("environment:", json.dumps(facts), flush=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    if not args.skip_check:
        from .preload import verify_preload

        started = time.perf_counter()
        verify_preload(pg_url)
        print(
            f"preload check: bulk rows == SqlScimStorage.create rows "
            f"({time.perf_counter() - started:.1f} s)",
            flush=True,
        )

    big = Scale(_label(args.users), Dataset(args.users, args.groups, args.members, args.seed))
    scales = [big]
    if args.small_users:
        small_groups = max(1, round(args.groups * args.small_users / args.users))
        label = _label(args.small_users)
        if label == big.label:
            label += "-small"
        scales.insert(
            0, Scale(label, Dataset(args.small_users, small_groups, args.members, args.seed))
        )

    results: dict[str, dict[str, list[Measurement]]] = {}
    with contextlib.ExitStack() as stack:
        for scale in scales:
            d = scale.dataset
            print(
                f"preloading {scale.label}: {d.users} users, {d.groups} groups of {d.members} "
                f"members → {', '.join(args.backends)}",
                flush=True,
            )
            _preload_scale(scale, args.backends, args.workdir, stack, args)
            print(f"  preloaded in {scale.preload_seconds:.1f} s", flush=True)
            if args.keep and "postgresql" in scale.urls:
                print(f"  PostgreSQL database kept: {scale.urls['postgresql']}")
        for backend in args.backends:
            for scale in scales:
                names = list(OPERATIONS) if scale is big else [FILTER_USERS]
                print(f"{LABELS[backend]}, {scale.label}:", flush=True)
                started = time.perf_counter()
                tag = scale.label
                with run_server(
                    backend, scale.urls[backend], args.workdir, tag, pin_generics=args.pin_generics
                ) as server:
                    print(f"  started in {time.perf_counter() - started:.1f} s", flush=True)

                    def profile(name: str, backend: str = backend, tag: str = tag) -> Path | None:
                        if args.profile is None or backend == "memory":
                            return None
                        return Path(args.profile) / f"{backend}-{tag}-{SHORT[name]}.txt"

                    measured = asyncio.run(
                        _measure_all(server, scale.dataset, names, args, profile)
                    )
                results.setdefault(backend, {})[scale.label] = measured

    report = build_report(args, facts, scales, results)
    print()
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": _command(),
                    "environment": facts,
                    "preload_seconds": {s.label: round(s.preload_seconds, 1) for s in scales},
                    "results": {
                        backend: {
                            label: [m.as_dict() for m in ms] for label, ms in by_scale.items()
                        }
                        for backend, by_scale in results.items()
                    },
                },
                indent=2,
            )
            + "\n"
        )
    return 0


def _label(users: int) -> str:
    return f"{users // 1000}k" if users >= 1000 and users % 1000 == 0 else str(users)


def _command() -> str:
    return "python -m bench.scim_bench " + " ".join(sys.argv[1:])


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"  # NaN


def build_report(
    args: argparse.Namespace,
    facts: dict[str, Any],
    scales: list[Scale],
    results: dict[str, dict[str, list[Measurement]]],
) -> str:
    """Markdown tables: per backend, per operation; then the small-vs-big filtered GET."""
    big, small = scales[-1], (scales[0] if len(scales) > 1 else None)
    lines = [
        f"Command: `{_command()}`",
        "",
        f"Machine: {facts.get('nproc')} CPUs ({facts.get('cpu', '?')}), "
        f"{facts.get('memory_gib', '?')} GiB RAM; Python {facts.get('python')}, "
        f"SQLite {facts.get('sqlite')}, PostgreSQL {facts.get('postgresql', 'n/a')}.",
        f"Load: {args.workers} concurrent workers, at most {args.requests} requests or "
        f"{args.seconds:g} s per operation, after {args.warmup} warm-up requests.",
        "Preload: " + ", ".join(f"{s.label} in {s.preload_seconds:.0f} s" for s in scales) + ".",
        "",
    ]
    memory = {m.operation: m for m in results.get("memory", {}).get(big.label, [])}
    for backend in args.backends:
        measured = results.get(backend, {}).get(big.label, [])
        lines += [
            f"### {LABELS[backend]} ({big.dataset.users:,} users, {big.dataset.groups:,} groups)",
            "",
        ]
        compare = backend != "memory" and bool(memory)
        header = "| operation | requests | median ms | p99 ms | req/s |"
        rule = "| --- | ---: | ---: | ---: | ---: |"
        if compare:
            header += " ratio to in-memory (median) |"
            rule += " ---: |"
        lines += [header, rule]
        for m in measured:
            row = (
                f"| `{m.operation}` | {m.count} | {_fmt(m.median_ms)} | {_fmt(m.p99_ms)} | "
                f"{_fmt(m.throughput, 1)} |"
            )
            if compare:
                reference = memory.get(m.operation)
                ratio = m.median_ms / reference.median_ms if reference else float("nan")
                row += f" {_fmt(ratio)}× |"
            lines.append(row)
        lines.append("")
    if small is not None:
        lines += [
            f"### Filtered GET (`{FILTER_USERS}`): {small.dataset.users:,} vs "
            f"{big.dataset.users:,} users",
            "",
            f"| server | median ms at {small.label} | median ms at {big.label} | ratio |",
            "| --- | ---: | ---: | ---: |",
        ]
        for backend in args.backends:
            by_scale = results.get(backend, {})
            a = next(
                (m for m in by_scale.get(small.label, []) if m.operation == FILTER_USERS), None
            )
            b = next((m for m in by_scale.get(big.label, []) if m.operation == FILTER_USERS), None)
            if a and b:
                lines.append(
                    f"| {LABELS[backend]} | {_fmt(a.median_ms)} | {_fmt(b.median_ms)} | "
                    f"{_fmt(b.median_ms / a.median_ms)}× |"
                )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
