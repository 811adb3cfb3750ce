"""The in-process event bus: bounded per-subscriber queues, current-state replay, sequence numbers."""

from targetd_server.events.bus import FILTERABLE, EventBus, StateProvider
from targetd_server.events.subscription import ALWAYS_SENT, Subscription

__all__ = ["ALWAYS_SENT", "FILTERABLE", "EventBus", "StateProvider", "Subscription"]
