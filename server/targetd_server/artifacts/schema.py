"""The structure of a rules artifact of schema version 1, checked before an artifact is compiled and
swapped in: what Node's engine would crash on or decide differently with is refused here, and the current
rules stay.

The schema (:data:`ARTIFACT_SCHEMA`, JSON Schema draft-07) is written from the reference
(``reference/target-sdk-behaviour.md`` §4.2: the artifact's keys, rules in priority order, JSON Logic
conditions, the consequence's ``name`` / ``options`` / ``metrics``) and from every artifact of the shared
conformance suite and the bundled sample (``tests/artifacts/test_schema.py`` checks that all of them pass):

* ``version`` (string), ``meta`` (object) and ``rules`` (object) are required; ``rules.mboxes`` and
  ``rules.views`` are maps of rule lists; the name lists (``responseTokens``, ``localMboxes``, ...) are
  lists of strings; ``globalMbox`` is a string, ``geoTargetingEnabled`` a boolean;
* a rule has ``ruleKey`` (string), ``activityId`` (integer), ``meta`` (object), ``condition`` (a JSON
  Logic object of one operator, or a boolean) and ``consequence`` (an object with ``options``, a list of
  objects); ``propertyTokens`` is a list of strings;
* inside a condition every object is one operator with its arguments (JSON Logic), to any depth.

Unknown keys are allowed everywhere (Target adds keys within a major version). Validation is
`fastjsonschema <https://horejsek.github.io/python-fastjsonschema/>`_ (the schema compiled to Python once,
at import); :func:`check_artifact` raises :class:`SchemaError` with the path of the first error.

Thread affinity: none (pure; called from the provider's worker thread).
"""

from __future__ import annotations

from typing import Any, Final

import fastjsonschema

__all__ = ["ARTIFACT_SCHEMA", "SchemaError", "check_artifact"]

_STRINGS: Final = {"type": "array", "items": {"type": "string"}}

ARTIFACT_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Adobe Target on-device decisioning artifact, schema version 1",
    "type": "object",
    "required": ["version", "meta", "rules"],
    "properties": {
        "version": {"type": "string", "minLength": 1},
        "meta": {"type": "object"},
        "globalMbox": {"type": "string"},
        "geoTargetingEnabled": {"type": "boolean"},
        "hasGeoTargeting": {"type": "boolean"},
        "responseTokens": _STRINGS,
        "remoteMboxes": _STRINGS,
        "remoteViews": _STRINGS,
        "localMboxes": _STRINGS,
        "localViews": _STRINGS,
        "rules": {
            "type": "object",
            "required": ["mboxes", "views"],
            "properties": {
                "mboxes": {"$ref": "#/definitions/ruleGroups"},
                "views": {"$ref": "#/definitions/ruleGroups"},
            },
        },
    },
    "definitions": {
        "ruleGroups": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"$ref": "#/definitions/rule"}},
        },
        "rule": {
            "type": "object",
            "required": ["ruleKey", "activityId", "meta", "condition", "consequence"],
            "properties": {
                "ruleKey": {"type": "string"},
                "activityId": {"type": "integer"},
                "meta": {"type": "object"},
                "condition": {"$ref": "#/definitions/condition"},
                "consequence": {"$ref": "#/definitions/consequence"},
                "propertyTokens": _STRINGS,
            },
        },
        "consequence": {
            "type": "object",
            "required": ["options"],
            "properties": {
                "name": {"type": "string"},
                "options": {"type": "array", "items": {"$ref": "#/definitions/option"}},
                "metrics": {"type": "array", "items": {"$ref": "#/definitions/metric"}},
            },
        },
        "option": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "eventToken": {"type": "string"},
                "responseTokens": {"type": "object"},
            },
        },
        "metric": {
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {"type": "string"},
                "eventToken": {"type": "string"},
                "selector": {"type": "string"},
            },
        },
        "condition": {
            "anyOf": [{"type": "boolean"}, {"$ref": "#/definitions/operation"}],
        },
        "operation": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": {"$ref": "#/definitions/argument"},
        },
        "argument": {
            "anyOf": [
                {"type": ["string", "number", "boolean", "null"]},
                {"type": "array", "items": {"$ref": "#/definitions/argument"}},
                {"$ref": "#/definitions/operation"},
            ],
        },
    },
}

_validate: Final = fastjsonschema.compile(ARTIFACT_SCHEMA)


class SchemaError(ValueError):
    """The artifact does not follow schema version 1; ``path`` is where (e.g.
    ``rules.mboxes.home[0].condition``), the message says what is wrong there."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"Invalid artifact: {path or 'the artifact'}: {problem}")


def check_artifact(raw: Any) -> None:
    """Check a parsed artifact of major version 1 against :data:`ARTIFACT_SCHEMA`. Raises
    :class:`SchemaError` at the first error (a nesting too deep to check is an error too)."""
    try:
        _validate(raw)
    except fastjsonschema.JsonSchemaValueException as exc:
        name = exc.name or "data"  # e.g. "data.rules.mboxes.home[0].condition"
        path = name.removeprefix("data").lstrip(".")
        problem = (exc.message or "").removeprefix(name).strip() or "invalid"
        if problem == "cannot be validated by any definition":
            problem = "must be a JSON Logic operation (an object of one operator) or a boolean"
        raise SchemaError(path, problem) from None
    except RecursionError:
        raise SchemaError("", "nested too deeply to check") from None
