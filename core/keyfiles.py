"""Development secrets kept in files: when a key setting is unset in development, a key is
generated on first use and kept in a file under var/ (never in the database, which is what the
keys protect against). Production sets the environment variable; with DEBUG=False the callers
refuse to run without it."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


def read_or_create(path: Path, make: Callable[[], str], *, what: str) -> str:
    """The text kept in `path`, written first (from `make()`) if the file does not exist."""
    if not path.exists():
        _create(path, make(), what=what)
    return path.read_text().strip()


def _create(path: Path, text: str, *, what: str) -> None:
    """Written aside, then linked into place: two processes starting at once end up with one key,
    and nobody reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temporary, path)
        logger.warning("%s is unset: generated a development key in %s", what, path)
    except FileExistsError:
        pass  # another process was first: its key is the key
    finally:
        temporary.unlink()
