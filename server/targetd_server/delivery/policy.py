"""The notification sender's retry policy: what a failed Delivery API call means for the rows it carried.

Per status class (documented in docs/remote.md, "Retries"):

* **retryable** — network errors, timeouts, 5xx, 408, 425, 429 (:class:`UpstreamError` that is not a
  rejection): the Delivery API or the way to it is unwell, the row is fine. Retried with exponential
  backoff (``RETRY_BASE_S`` doubling per attempt, capped by ``outbox_max_backoff``, equal jitter: a delay
  ``d`` becomes uniform in ``[d/2, d]``) for as long as the row is younger than ``outbox_max_age``; an older
  row goes to quarantine (``expired``) — never deleted.
* **rejected** — any other 4xx (:class:`UpstreamRejectedError`): the Delivery API refuses this content.
  A blip of 400s (a bad deploy at the edge) must not lose data, so the row is retried
  ``outbox_reject_retries`` times with backoff from ``REJECT_BASE_S`` (doubling, capped by
  ``outbox_max_backoff``), and then quarantined (``rejected``) with the answer as the reason.
* **closing** — :class:`NotReadyError` (the sender is stopping): due again at once, at the next start.
* anything else is a bug of targetd: treated as retryable (never drops a row) and logged with its
  traceback by the sender.

``attempts`` counts every failed send of a row, whatever its class, so a row that failed for a while
retryably and is then rejected reaches quarantine sooner; ``targetd outbox requeue`` brings any row back.

Thread affinity: none (pure; the random source is injectable for tests).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from targetd_server.errors import NotReadyError, UpstreamError, UpstreamRejectedError

__all__ = ["REJECT_BASE_S", "RETRY_BASE_S", "RetryPolicy", "Verdict"]

RETRY_BASE_S: Final = 0.5
"""First backoff of a retryable failure, seconds (then doubled per attempt)."""
REJECT_BASE_S: Final = 5.0
"""First backoff of a rejection, seconds: with 5 retries and a 60 s cap, a rejected row is retried over
about 2 minutes before it is quarantined."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """``retry`` at ``next_at_ms`` (epoch ms), or ``quarantine`` with ``reason``; ``kind`` is the status
    class (``retryable``, ``rejected``, ``closing``, ``bug``) for counting."""

    action: Literal["retry", "quarantine"]
    kind: str
    next_at_ms: int = 0
    reason: str = ""


class RetryPolicy:
    """See the module docstring. ``max_backoff_s`` caps every delay; ``max_age_s`` is the age past which a
    retryable row is quarantined; ``reject_retries`` the rejections a row may get before quarantine."""

    def __init__(
        self,
        *,
        max_backoff_s: float,
        max_age_s: float,
        reject_retries: int,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.max_backoff_ms = max(1.0, max_backoff_s * 1000)
        self.max_age_ms = max(0.0, max_age_s * 1000)
        self.reject_retries = max(0, reject_retries)
        self._uniform = uniform

    def _delay_ms(self, base_s: float, attempts: int) -> int:
        delay = min(self.max_backoff_ms, base_s * 1000 * 2 ** min(attempts, 30))
        return int(self._uniform(delay / 2, delay))

    def on_failure(self, error: BaseException, *, attempts: int, first_at_ms: int, now_ms: int) -> Verdict:
        """The verdict for rows that failed with ``error`` after ``attempts`` earlier failures, stored at
        ``first_at_ms`` (the oldest of them when they went together)."""
        if isinstance(error, NotReadyError):
            return Verdict("retry", "closing", next_at_ms=now_ms)
        if isinstance(error, UpstreamRejectedError):
            if attempts + 1 > self.reject_retries:
                return Verdict(
                    "quarantine", "rejected", reason=f"rejected {attempts + 1} times; last: {error}"
                )
            return Verdict("retry", "rejected", next_at_ms=now_ms + self._delay_ms(REJECT_BASE_S, attempts))
        kind = "retryable" if isinstance(error, UpstreamError) else "bug"
        age_ms = now_ms - first_at_ms
        if age_ms > self.max_age_ms:
            return Verdict(
                "quarantine",
                "expired",
                reason=f"not delivered within outbox_max_age ({age_ms // 1000} s, {attempts + 1} attempts); "
                f"last: {error}",
            )
        return Verdict("retry", kind, next_at_ms=now_ms + self._delay_ms(RETRY_BASE_S, attempts))
