"""The JSON Schemas (draft 2020-12) of the three record kinds, shipped as package data.

``journal.schema.json`` (a journal line), ``action.schema.json`` (an action
entry) and ``warning.schema.json`` (a warning body). Each is self-contained,
so that any validator or engine can use one file alone. A record's
``schema_version`` member names the version of its schema
(:data:`SCHEMA_VERSION`); a change that removes a member or changes a type
makes a new version.

This package imports nothing of ours.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Final

__all__ = ["KINDS", "SCHEMA_VERSION", "load", "members"]

#: The version every record written by this library carries in ``schema_version``.
SCHEMA_VERSION: Final = 1
#: The record kinds that have a schema.
KINDS: Final = ("journal", "action", "warning")


@cache
def _text(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"no schema for {kind!r}; kinds: {', '.join(KINDS)}")
    return resources.files(__name__).joinpath(f"{kind}.schema.json").read_text(encoding="utf-8")


def load(kind: str) -> dict[str, Any]:
    """The JSON Schema of ``kind`` (``journal``, ``action`` or ``warning``), as a new dict."""
    schema: dict[str, Any] = json.loads(_text(kind))
    return schema


def members(kind: str) -> dict[str, dict[str, Any]]:
    """The members a record of ``kind`` may have, in schema order, each with its sub-schema."""
    properties: dict[str, dict[str, Any]] = load(kind)["properties"]
    return properties
