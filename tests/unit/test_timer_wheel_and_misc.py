"""Timer wheel, redaction, configuration (pure: a fake clock, no loop)."""

from __future__ import annotations

import pytest

from tornado_sse.config import Settings, settings_from_args
from tornado_sse.errors import StreamError
from tornado_sse.redact import redact
from tornado_sse.timer_wheel import TimerWheel


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_wheel_fires_due_timers_once_and_skips_cancelled() -> None:
    clock = Clock()
    wheel = TimerWheel(resolution=0.1, clock=clock)
    fired: list[str] = []
    wheel.call_later(0.25, lambda: fired.append("a"))
    t = wheel.call_later(0.25, lambda: fired.append("b"))
    wheel.call_later(1.0, lambda: fired.append("c"))
    t.cancel()
    clock.now += 0.2
    wheel.advance()
    assert fired == []
    clock.now += 0.1
    wheel.advance()
    assert fired == ["a"]
    clock.now += 5  # a long stall fires everything due, in order
    wheel.advance()
    wheel.advance()
    assert fired == ["a", "c"]
    assert len(wheel) == 0


def test_wheel_timer_in_the_past_fires_next_tick() -> None:
    clock = Clock()
    wheel = TimerWheel(resolution=0.5, clock=clock)
    fired: list[int] = []
    wheel.call_at(clock.now - 10, lambda: fired.append(1))
    clock.now += 0.5
    wheel.advance()
    assert fired == [1]


def test_redact_removes_keys_bearer_and_url_credentials() -> None:
    text = ('Bearer sk-abc123456789 https://user:pw@host/v1 {"api_key": "zzz"} '
            "Incorrect API key provided: sk-proj-SECRETSECRET")
    out = redact(text, ["zzz"])
    for secret in ("sk-abc123456789", "pw@", "zzz", "SECRETSECRET"):
        assert secret not in out


def test_settings_repr_hides_key_and_env_precedence() -> None:
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-hidden-999999",
           "OPENAI_MODEL": "env-model"}
    s = settings_from_args(["--model=flag-model", "--heartbeat=2.5", "--total-timeout=0"], env)
    assert s.upstream_url == "http://127.0.0.1:9/v1"
    assert s.api_key == "sk-hidden-999999"
    assert s.model == "flag-model" and s.heartbeat == 2.5 and s.total_timeout == 0
    assert "sk-hidden" not in repr(s)
    assert settings_from_args([], {}).uses_demo_upstream


def test_negative_timeout_rejected() -> None:
    with pytest.raises(SystemExit):
        settings_from_args(["--idle-timeout=-1"], {})


def test_default_max_streams_from_open_file_limit() -> None:
    assert Settings().max_streams >= 1


def test_stream_error_event_data_is_safe() -> None:
    err = StreamError("upstream_auth", "401: sk-leaky", status=401)
    assert err.to_event_data() == {"msg": "The AI service rejected this server's credentials.",
                                   "code": "upstream_auth", "retryable": False}
    with pytest.raises(ValueError):
        StreamError("made_up")
