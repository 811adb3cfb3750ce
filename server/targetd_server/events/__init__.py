"""The in-process event bus: bounded per-subscriber queues, current-state replay, sequence numbers."""

from targetd_server.events.bus import ALWAYS_SENT, FILTERABLE, EventBus, StateProvider, Subscription

__all__ = ["ALWAYS_SENT", "FILTERABLE", "EventBus", "StateProvider", "Subscription"]
