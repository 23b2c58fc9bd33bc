"""Summarise py-spy collapsed stacks (``py-spy record --format raw``, as ``--profile`` writes).

    python -m bench.hotspots /tmp/scim-bench/profile/sqlite-100k-page-users.txt --top 25

prints, for the functions that appear in most samples, the share of samples in which each is
on the stack (inclusive) and at the top of it (self). Frames are grouped by function and file,
not line, and only samples of the thread that serves requests (the event loop) are counted
unless ``--all-threads``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

LINE = re.compile(r":\d+\)$")


def _frame(frame: str) -> str:
    """``_build (scim_bridge/store/scim_storage.py:163)`` → ``_build (…/store/scim_storage.py)``."""
    frame = LINE.sub(")", frame.strip())
    name, _, where = frame.partition(" (")
    parts = where.rstrip(")").split("/")
    return f"{name} ({'/'.join(parts[-3:])})" if where else name


def summarise(
    path: Path, *, contains: str | None = None, all_threads: bool = False
) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, inclusive counts, self counts) of the stacks in ``path``."""
    total = 0
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";") if f.strip()]
        if not all_threads and not any("run_forever" in f or "_run_once" in f for f in frames):
            continue  # not the event loop: aiosqlite's thread, py-spy's idle samples
        if contains and not any(contains in f for f in frames):
            continue
        count = int(count_text)
        total += count
        for name in set(frames):
            inclusive[name] += count
        leaf[frames[-1]] += count
    return total, inclusive, leaf


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotspots", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", help="only functions whose frame contains this text")
    parser.add_argument("--all-threads", action="store_true")
    args = parser.parse_args(argv)
    for path in args.files:
        total, inclusive, leaf = summarise(path, all_threads=args.all_threads)
        print(f"== {path} ({total} samples)")
        if not total:
            continue
        shown = 0
        for name, count in inclusive.most_common():
            if args.match and args.match not in name:
                continue
            print(f"{100 * count / total:6.1f}% incl {100 * leaf[name] / total:6.1f}% self  {name}")
            shown += 1
            if shown >= args.top:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
