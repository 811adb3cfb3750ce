"""Hybrid routing: which requested mboxes and views the artifact cannot decide locally (Node rule)."""

from __future__ import annotations

from dataclasses import dataclass

from targetd.v1 import delivery_pb2
from targetd_server.engine.artifact import DEFAULT_GLOBAL_MBOX, CompiledArtifact

__all__ = ["RemoteDependency", "has_remote_dependency"]


@dataclass(frozen=True, slots=True)
class RemoteDependency:
    """Mboxes and views that need the Delivery API; ``remote_needed`` when either is non-empty."""

    remote_mboxes: tuple[str, ...]
    remote_views: tuple[str, ...]

    @property
    def remote_needed(self) -> bool:
        """True when the request cannot be fully decided on-device."""
        return bool(self.remote_mboxes or self.remote_views)


def _ordered(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def has_remote_dependency(
    artifact: CompiledArtifact, request: delivery_pb2.DeliveryRequest
) -> RemoteDependency:
    """Requested mboxes (execute and prefetch; a pageLoad counts as ``target-global-mbox``, as Node 2.3.2+)
    that are listed in ``remoteMboxes`` or missing from ``localMboxes``; requested views likewise, where
    views requested without any name mean every ``remoteViews`` entry. Lists keep request order."""
    mboxes: list[str] = []
    views: list[str] = []
    named_views = 0
    has_execute = request.HasField("execute")
    has_prefetch = request.HasField("prefetch")
    if has_execute:
        mboxes.extend(m.name for m in request.execute.mboxes if m.name)
        if request.execute.HasField("page_load"):
            mboxes.append(DEFAULT_GLOBAL_MBOX)
    if has_prefetch:
        mboxes.extend(m.name for m in request.prefetch.mboxes if m.name)
        if request.prefetch.HasField("page_load"):
            mboxes.append(DEFAULT_GLOBAL_MBOX)
        for view in request.prefetch.views:
            if view.name:
                named_views += 1
                views.append(view.name)
    remote_mboxes = [
        name
        for name in _ordered(mboxes)
        if name in artifact.remote_mboxes or name not in artifact.local_mboxes
    ]
    if has_prefetch and request.prefetch.views and named_views == 0:
        remote_views = list(artifact.remote_views)
    else:
        remote_views = [
            name
            for name in _ordered(views)
            if name in artifact.remote_views or name not in artifact.local_views
        ]
    return RemoteDependency(tuple(remote_mboxes), _ordered(remote_views))
