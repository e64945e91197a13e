"""Access-log line formatting and the JSON log formatter: pure."""

from __future__ import annotations

import json
import logging

import pytest

from tornado_sse.access_log import logfmt
from tornado_sse.config import settings_from_args
from tornado_sse.log_format import JsonFormatter


def test_logfmt_quotes_what_would_break_a_line() -> None:
    line = logfmt("stream_end", {"stream": "abc", "code": None, "empty": "", "ttft": 0.12345,
                                 "deltas": 3, "question": 'a "b" c\nd', "cjk": "你好"})
    assert line == ('stream_end stream=abc code=- empty=- ttft=0.123 deltas=3 '
                    'question="a \\"b\\" c\\nd" cjk=你好')
    assert "\n" not in line


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("tornado_sse.access", logging.INFO, __file__, 1, msg, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_formatter_puts_fields_typed() -> None:
    out = JsonFormatter().format(_record("stream_end ...", event="stream_end",
                                         fields={"stream": "abc", "deltas": 3, "ttft": None}))
    obj = json.loads(out)
    assert obj["event"] == "stream_end" and obj["logger"] == "tornado_sse.access"
    assert obj["level"] == "INFO" and obj["time"].endswith("+00:00")
    assert obj["stream"] == "abc" and obj["deltas"] == 3 and obj["ttft"] is None
    assert "message" not in obj


def test_json_formatter_plain_message_and_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        record = _record("something 你好")
        record.exc_info = sys.exc_info()
    obj = json.loads(JsonFormatter().format(record))
    assert obj["message"] == "something 你好"
    assert "ValueError: boom" in obj["exc"]


def test_ops_flags() -> None:
    s = settings_from_args(["--cors-origin=https://a.example", "--cors-origin=https://b.example",
                            "--log-content", "--log-format=json", "--drain-timeout=5", "--xheaders"],
                           environ={})
    assert s.cors_origins == ("https://a.example", "https://b.example")
    assert s.log_content and s.xheaders
    assert s.log_format == "json" and s.drain_timeout == 5.0
    d = settings_from_args([], environ={})
    assert d.cors_origins == () and not d.log_content and d.log_format == "text"
    assert d.drain_timeout == 30.0


@pytest.mark.parametrize("argv", [["--log-format=xml"], ["--drain-timeout=-1"]])
def test_bad_ops_flags(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        settings_from_args(argv, environ={})
