"""The ``get_attributes`` result: the SDK's ``AttributesProvider``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from targetd_client._errors import TargetClientError

if TYPE_CHECKING:
    from targetd_client._convert import TargetDeliveryResponse

__all__ = ["AttributeNotFoundError", "Attributes"]


class AttributeNotFoundError(TargetClientError, KeyError):
    """What :meth:`Attributes.get_value` returns (Node's behaviour) for an attribute that does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Attributes:
    """The flattened JSON-offer attributes per mbox (prefetch first, then execute; later keys win), and the
    envelope they came from. Immutable once built; safe to share between threads."""

    __slots__ = ("_attributes", "_response")

    def __init__(self, attributes: dict[str, dict[str, Any]], response: TargetDeliveryResponse) -> None:
        self._attributes = attributes
        self._response = response

    def get_value(self, mbox_name: str, key: str) -> Any:
        """The value of attribute ``key`` of ``mbox_name``.

        As in Adobe's Node SDK (targetd follows Node where the SDKs differ), a missing attribute is
        *returned* as an :class:`AttributeNotFoundError` (``"Attribute 'k' does not exist for mbox 'm'"``),
        not raised: test with ``isinstance(value, AttributeNotFoundError)``.
        """
        values = self._attributes.get(mbox_name)
        if values is None or key not in values:
            return AttributeNotFoundError(f"Attribute '{key}' does not exist for mbox '{mbox_name}'")
        return values[key]

    def as_object(self, mbox_name: str | None = None) -> dict[str, Any]:
        """The attributes of ``mbox_name`` as a dict (empty for an mbox without JSON offers), or every mbox's
        attributes keyed by name when no name is given. The dicts are the provider's own: do not mutate."""
        if mbox_name is None:
            return self._attributes
        return self._attributes.get(mbox_name, {})

    def to_json(self) -> dict[str, Any]:
        """Every mbox's attributes keyed by name (Node's ``toJSON``)."""
        return self._attributes

    def get_response(self) -> TargetDeliveryResponse:
        """The ``get_offers``-style envelope of the call."""
        return self._response

    def __repr__(self) -> str:
        return f"Attributes({self._attributes!r})"
