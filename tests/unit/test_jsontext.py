"""JSON text for answers and log lines: one rule for strings UTF-8 cannot carry."""

from __future__ import annotations

import json
import logging

from hooksync.jsontext import dump_json
from hooksync.logs import JsonFormatter
from receiver.app import render_json


def test_text_stays_utf8_and_a_lone_surrogate_falls_back_to_ascii_escapes() -> None:
    assert dump_json({"reason": "café"}) == '{"reason":"café"}'.encode()
    escaped = dump_json({"reason": "bad \ud800 ref"})
    assert escaped == b'{"reason":"bad \\ud800 ref"}'
    assert json.loads(escaped) == {"reason": "bad \ud800 ref"}


def test_answers_and_log_lines_share_the_rule() -> None:
    value = {"error": "ref 'x\udfff' is not valid"}
    assert render_json(value) == dump_json(value)
    record = logging.makeLogRecord({"msg": "refused", "levelname": "INFO", "ref": "x\udfff"})
    line = JsonFormatter().format(record)
    assert line.isascii()
    assert json.loads(line)["ref"] == "x\udfff"
