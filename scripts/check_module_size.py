"""Fail when an application module is longer than docs/style.md allows (500 lines): past that, split it
along its jobs. Migrations are generated and left out; tests and benchmarks are not application code.

    python scripts/check_module_size.py [--limit 500] [ROOT]

Prints each module over the limit with its line count and exits 1; prints nothing and exits 0
when every module fits. `make lint` runs it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The application's packages: the import-linter layers (pyproject.toml).
PACKAGES = ("core", "lifecycle", "governance", "serving", "monitoring", "compliance", "integrations", "config")
LIMIT = 500


def line_count(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def oversized(root: Path = ROOT, limit: int = LIMIT) -> list[tuple[str, int]]:
    """(module path relative to root, lines) of every application module over `limit` lines."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            if "migrations" in relative.parts:
                continue
            lines = line_count(path)
            if lines > limit:
                found.append((relative.as_posix(), lines))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=ROOT)
    parser.add_argument("--limit", type=int, default=LIMIT)
    args = parser.parse_args(argv)
    found = oversized(args.root, args.limit)
    for module, lines in found:
        print(f"{module}: {lines} lines (the limit is {args.limit}): split it along its jobs")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
