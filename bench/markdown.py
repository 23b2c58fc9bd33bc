"""Writing a benchmark's generated section into docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path


def write_section(
    path: Path, generated: str, *, section: str, begin: str, end: str, intro: str
) -> None:
    """Put ``generated`` (which starts with ``begin`` and ends with ``end``) under the heading
    ``section`` of ``path``, touching nothing else: between its markers if they exist, right
    under the heading if only that exists, else in a new section (with ``intro``) at the end."""
    existing = path.read_text() if path.exists() else ""
    if begin in existing and end in existing:
        head, _, rest = existing.partition(begin)
        _, _, tail = rest.partition(end)
        updated = head + generated + tail
    elif section in existing:
        head, _, tail = existing.partition(section)
        updated = head + section + "\n\n" + generated + "\n" + tail.lstrip("\n")
    else:
        separator = "" if not existing else ("\n" if existing.endswith("\n") else "\n\n")
        updated = existing + separator + section + "\n\n" + intro + generated + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(updated)
