"""A/B of the pinned-generics fix (see bench/pinned_server.py) on one SQLite database.

Both servers run at once on the same preloaded database; rounds of searches alternate
between them, so that the noise of a shared machine falls on both alike::

    python -m bench.ab_generics --users 1000 --rounds 6 --requests 250
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

from scim_bridge.store.migrate import upgrade

from .dataset import Dataset
from .load import Measurement, measure
from .preload import SqliteSink, preload
from .scim_bench import FILTER_GROUPS, FILTER_USERS, Server, make_operations, run_server


async def _rounds(servers: dict[str, Server], dataset: Dataset, args: argparse.Namespace) -> None:
    pooled: dict[tuple[str, str], list[float]] = {}
    for round_number in range(args.rounds):
        for variant, server in servers.items():
            calls = make_operations(dataset, args.seed + round_number)
            async with httpx.AsyncClient(
                base_url=server.base_url,
                headers={"Authorization": f"Bearer {server.token}"},
                timeout=60,
            ) as client:
                for name in (FILTER_USERS, FILTER_GROUPS):
                    result: Measurement = await measure(
                        client,
                        name,
                        calls[name],
                        workers=args.workers,
                        requests=args.requests,
                        seconds=60,
                        warmup=5,
                    )
                    pooled.setdefault((variant, name), []).extend(result.latencies)
    for name in (FILTER_USERS, FILTER_GROUPS):
        medians = {}
        for variant in servers:
            latencies = sorted(pooled[(variant, name)])
            medians[variant] = statistics.median(latencies) * 1000
            p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
            print(
                f"{variant:>7} {name:<66} median {medians[variant]:7.2f} ms  p99 {p99:7.2f} ms"
                f"  ({len(latencies)} requests)"
            )
        print(f"{'':>7} pinned/plain median ratio: {medians['pinned'] / medians['plain']:.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab_generics", description=__doc__)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=250, help="per round, operation, server")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/scim-bench/ab"))
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / "ab.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    upgrade(url)
    dataset = Dataset(args.users, max(1, args.users // 20), 20, args.seed)
    preload(dataset, [SqliteSink(url)], memory=False)
    with (
        run_server("sqlite", url, args.workdir, "plain") as plain,
        run_server("sqlite", url, args.workdir, "pinned", pin_generics=True) as pinned,
    ):
        asyncio.run(_rounds({"plain": plain, "pinned": pinned}, dataset, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
