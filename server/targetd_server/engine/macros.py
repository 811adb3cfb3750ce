"""Campaign macros: ``${...}`` placeholders in html offers and in the ``content`` of VEC actions.

Node semantics: in the key, ``campaign`` becomes ``activity`` and ``recipe`` becomes ``experience``; only
the last two dot-separated parts are kept and ``mbox`` parts are dropped (``${campaign.recipe.id}`` →
``experience.id``, ``${mbox.user}`` → ``user``). The value is the first present of the rule's meta
(``offer.id``, ``activity.name``, ...), the request item (``name``, ``index``) and the item's
parameters; a macro with no value is left as written. Values render as JavaScript strings
(``true``, ``125891``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from targetd_server.engine.artifact import MACRO_RE
from targetd_server.engine.jsvalues import js_str

__all__ = ["macro_key", "render_macros"]

_RENAMES = {"campaign": "activity", "recipe": "experience"}


def macro_key(raw: str) -> str:
    """The lookup key of a macro name (``campaign.recipe.id`` → ``experience.id``)."""
    parts = [_RENAMES.get(part, part) for part in raw.split(".")]
    parts = parts[-2:]
    return ".".join(part for part in parts if part != "mbox")


def render_macros(
    template: str, meta: Mapping[str, Any], item: Mapping[str, Any], parameters: Mapping[str, str]
) -> str:
    """Replace every macro of ``template``."""

    def replace(match: re.Match[str]) -> str:
        key = macro_key(match.group(1))
        for source in (meta, item, parameters):
            value = source.get(key)
            if value is not None:
                return js_str(value)
        return match.group(0)

    return MACRO_RE.sub(replace, template)
