"""Hybrid routing: which requested mboxes and views the artifact cannot decide locally (Node rule)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

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


_NONE: Final = RemoteDependency((), ())


def _ordered(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def has_remote_dependency(
    artifact: CompiledArtifact, request: delivery_pb2.DeliveryRequest
) -> RemoteDependency:
    """Node's ``hasRemoteDependency``: the requested mbox names (prefetch first, then execute; a pageLoad
    counts as ``target-global-mbox``, as Node 2.3.2+) that the artifact lists in ``remoteMboxes`` — in the
    artifact's order — followed by those missing from ``localMboxes`` in request order, without repeats;
    views likewise, where views requested without any name mean every ``remoteViews`` entry."""
    requested: list[str] = []
    views: list[str] = []
    named_views = 0
    parts = [getattr(request, part) for part in ("prefetch", "execute") if request.HasField(part)]
    for part in parts:
        requested.extend(m.name for m in part.mboxes if m.name)
    if any(part.HasField("page_load") for part in parts):
        requested.append(DEFAULT_GLOBAL_MBOX)
    has_views = request.HasField("prefetch") and bool(request.prefetch.views)
    if not has_views:
        local, remote = artifact.local_mboxes, artifact.remote_mboxes
        if all(name in local and name not in remote for name in requested):
            return _NONE  # (every call of a site whose mboxes are all local: no lists built)
    wanted = set(requested)
    remote_mboxes = [name for name in artifact.remote_mboxes if name in wanted]
    remote_mboxes.extend(name for name in requested if name not in artifact.local_mboxes)
    for view in request.prefetch.views:
        if view.name:
            named_views += 1
            views.append(view.name)
    if has_views and named_views == 0:
        remote_views = list(artifact.remote_views)
    else:
        wanted_views = set(views)
        remote_views = [name for name in artifact.remote_views if name in wanted_views]
        remote_views.extend(name for name in views if name not in artifact.local_views)
    return RemoteDependency(_ordered(remote_mboxes), _ordered(remote_views))
