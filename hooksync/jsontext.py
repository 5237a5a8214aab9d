"""JSON text for webhook answers and log lines: compact, and never failing on a string.

A reason or a log field may quote a payload string, and a payload may carry a lone surrogate
(`"\\ud800"`), which UTF-8 cannot encode. orjson refuses such a string; JSON's \\u escapes carry
it, so the fallback writes ASCII JSON, which any JSON reader decodes to the same value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson


def dump_json(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """`value` as compact JSON in UTF-8, or in ASCII when a string cannot be UTF-8.

    `default` turns values JSON has no type for into ones it has (as in json.dumps).
    """
    try:
        return orjson.dumps(value, default=default)
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate is not UTF-8
        text = json.dumps(value, default=default, allow_nan=False, separators=(",", ":"))
        return text.encode("ascii")
