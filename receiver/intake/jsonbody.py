"""A delivery's JSON body, read lazily: only the fields a parser asks for become Python values.

A push from GitHub is about 7 KB of JSON, of which hooksync reads six fields. simdjson checks
the whole document (structure, UTF-8, escapes, numbers, depth) in one pass and leaves it in
its own memory; `JSONBody.fields` then copies out what a shape names. A document simdjson
refuses is read again by orjson, which decides: its answer, a full document or the reason
for a 400, is what the delivery gets, so a refusal reads the same as it always has.

Shapes: a dict maps each key read to the shape below it (None: the value itself); a list
of one shape means that shape for every item of an array. Values the shape does not go into
are kept as they are when scalar, and as an empty container of the same kind otherwise (the
parsers only name the kind of such a value in their reasons).
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import simdjson

from receiver.intake.errors import MalformedDelivery

Shape = dict[str, "Shape | None"] | list["Shape"]

MAX_NESTING: Final = 1024  # orjson's own limit, and simdjson's default
BYTE_ORDER_MARK: Final = b"\xef\xbb\xbf"


class JSONBody:
    """One JSON object, checked whole when built; raises MalformedDelivery otherwise.

    `what` names the document in reasons ("body", "payload").
    """

    def __init__(self, data: bytes | str, what: str) -> None:
        self._lazy = read_lazily(data)
        self._whole: dict[str, Any] = {} if self._lazy is not None else _decide(data, what)

    def fields(self, shape: dict[str, Shape | None]) -> dict[str, Any]:
        """The parts of the object that `shape` names, as plain Python values (all of it when
        orjson read it)."""
        if self._lazy is not None:
            return _copy_object(self._lazy, shape)
        return self._whole


def read_lazily(data: bytes | str) -> simdjson.Object | None:
    """simdjson's reading of `data` when it is a JSON object it accepts; None otherwise.

    orjson then decides. A form field's payload (a str) goes to orjson too: it is rare and
    already decoded. A leading byte order mark, which simdjson skips and orjson refuses, is
    left to orjson, so accepting it or not does not depend on the parser.
    """
    if not isinstance(data, bytes) or data.startswith(BYTE_ORDER_MARK):
        return None
    try:
        # A new parser each time: a parser's documents keep it alive, none is ever shared.
        document = simdjson.Parser().parse(data)
    except (ValueError, RuntimeError):  # every refusal, UnicodeDecodeError included
        return None
    return document if isinstance(document, simdjson.Object) else None


def json_kind(value: object) -> str:
    """What a JSON value is, in the words of a reason: "a string", "a list", "null", ..."""
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _decide(data: bytes | str, what: str) -> dict[str, Any]:
    """orjson's reading of `data`: the object, or MalformedDelivery saying what is wrong."""
    # orjson parses strictly (RFC 8259: no NaN, no lone surrogates) and refuses documents
    # nested deeper than MAX_NESTING levels on its own, without deep recursion.
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg or "recursion" in exc.msg:
            raise MalformedDelivery(f"{what} is nested deeper than {MAX_NESTING} levels") from None
        raise MalformedDelivery(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(document, dict):
        raise MalformedDelivery(f"{what} is not a JSON object but {json_kind(document)}")
    return document


def _copy_object(node: simdjson.Object, shape: dict[str, Shape | None]) -> dict[str, Any]:
    copied: dict[str, Any] = {}
    for key, below in shape.items():
        try:
            value = node[key]
        except KeyError:
            continue
        if isinstance(value, simdjson.Object):
            copied[key] = _copy_object(value, below) if isinstance(below, dict) else {}
        elif isinstance(value, simdjson.Array):
            copied[key] = _copy_array(value, below[0]) if isinstance(below, list) else []
        else:
            copied[key] = value
    return copied


def _copy_array(node: simdjson.Array, shape: Shape | None) -> list[Any]:
    copied: list[Any] = []
    for value in node:
        if isinstance(value, simdjson.Object):
            copied.append(_copy_object(value, shape) if isinstance(shape, dict) else {})
        elif isinstance(value, simdjson.Array):
            copied.append(_copy_array(value, shape[0]) if isinstance(shape, list) else [])
        else:
            copied.append(value)
    return copied
