"""What a recertification decides on: a frozen snapshot of the version's monitoring evidence and
open findings. Monitoring (a higher layer) provides the function that takes it when its app is
ready, so the review page's Recertify button reaches it without governance importing upwards
(core.registry: a snapshot asked for that nobody provides fails the system check)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.registry import Registry
from lifecycle.models import ModelVersion

Taker = Callable[[ModelVersion], dict[str, Any]]
SNAPSHOTS: Registry[Taker] = Registry(
    "snapshot", "provider", "governance.snapshots.register it in the providing app's AppConfig.ready"
)
# the one snapshot a recertification freezes (monitoring.selectors.recertification_snapshot)
RECERTIFICATION = SNAPSHOTS.want("recertification", __name__)


def register(take: Taker, name: str = RECERTIFICATION) -> None:
    SNAPSHOTS.provide(name, take)


def take(version: ModelVersion) -> dict[str, Any]:
    return SNAPSHOTS.get(RECERTIFICATION)(version)
