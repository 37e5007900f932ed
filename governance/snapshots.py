"""What a recertification decides on: a frozen snapshot of the version's monitoring evidence and
open findings. Monitoring (a higher layer) registers the function that takes it when its app is
ready, so the review page's Recertify button reaches it without governance importing upwards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lifecycle.models import ModelVersion

_taker: list[Callable[[ModelVersion], dict[str, Any]]] = []


def register(take: Callable[[ModelVersion], dict[str, Any]]) -> None:
    _taker[:] = [take]


def take(version: ModelVersion) -> dict[str, Any]:
    if not _taker:
        raise RuntimeError("no monitoring snapshot is registered (is the monitoring app installed?)")
    return _taker[0](version)
