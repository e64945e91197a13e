"""Client tokens: parsing, lookup, and the loopback-only rule. Pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from tornado_sse.auth import (
    ANONYMOUS,
    AuthError,
    TokenConfigError,
    TokenTable,
    bearer_token,
    check_bind,
    is_loopback,
    parse_entries,
)
from tornado_sse.config import Settings, settings_from_args

ALICE = "tok-alice-0123456789abcdef"
BOB = "tok-bob-0123456789abcdefgh="


def test_file_format_with_names_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# clients\n\n{ALICE} alice\n  {BOB}\tbob smith  \nsk_plain_token_1234567\n")
    table = TokenTable.from_settings(Settings(tokens_file=str(path)))
    assert table.enabled
    assert table.authenticate(ALICE).name == "alice"
    assert table.authenticate(BOB).name == "bob smith"
    assert table.authenticate("sk_plain_token_1234567").name == "token-3"


def test_env_entries_split_on_commas_and_newlines() -> None:
    table = TokenTable.from_settings(Settings(tokens=f"{ALICE} alice, {BOB}\n"))
    assert table.names == ["alice", "token-2"]


def test_file_and_env_combine(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{ALICE} alice\n")
    table = TokenTable.from_settings(Settings(tokens_file=str(path), tokens=f"{BOB} bob"))
    assert table.names == ["alice", "bob"]


@pytest.mark.parametrize("presented,code", [(None, "missing_token"), ("", "missing_token"),
                                            ("nope", "invalid_token"), (ALICE + "x", "invalid_token"),
                                            (ALICE[:-1], "invalid_token"), ("\udcff\u00e9", "invalid_token")])
def test_wrong_or_missing_token_is_401(presented: str | None, code: str) -> None:
    table = TokenTable([(ALICE, "alice", "test")])
    with pytest.raises(AuthError) as info:
        table.authenticate(presented)
    assert info.value.status == 401 and info.value.code == code
    assert ALICE not in info.value.message


def test_no_tokens_means_everyone_is_anonymous() -> None:
    table = TokenTable()
    assert not table.enabled
    assert table.authenticate(None) is ANONYMOUS
    assert table.authenticate("anything") is ANONYMOUS


def test_tokens_are_not_kept_in_the_clear() -> None:
    table = TokenTable([(ALICE, "alice", "test")])
    assert ALICE.encode() not in repr(vars(table)).encode()
    assert ALICE not in repr(vars(table))


@pytest.mark.parametrize("text,error", [
    ("short", "16 to 512"),
    ("has\"quote-0123456789abc", "may only contain"),
    ("x" * 513, "16 to 512"),
    (f"{ALICE} a\n{ALICE} b", "listed twice"),
    (f"{ALICE} same\n{BOB} same", "used twice"),
    (f"{ALICE} anonymous", "reserved"),
])
def test_bad_configuration_is_refused_without_quoting_the_token(text: str, error: str) -> None:
    with pytest.raises(TokenConfigError) as info:
        TokenTable(parse_entries(text, "tokens.txt"))
    assert error in str(info.value)
    assert "tokens.txt line" in str(info.value)
    assert ALICE not in str(info.value) and "short" not in str(info.value).split(":")[0]


def test_unreadable_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(TokenConfigError, match="cannot read"):
        TokenTable.from_settings(Settings(tokens_file=str(tmp_path / "missing")))
    empty = tmp_path / "empty"
    empty.write_text("# nothing yet\n")
    with pytest.raises(TokenConfigError, match="holds no token"):
        TokenTable.from_settings(Settings(tokens_file=str(empty)))


@pytest.mark.parametrize("header,token", [
    ("Bearer abc", "abc"), ("bearer   abc  ", "abc"), ("BEARER abc", "abc"),
    ("Basic abc", None), ("Bearer", None), ("Bearer ", None), ("", None), (None, None),
])
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("", False), ("::", False), ("192.168.1.2", False), ("example.com", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_no_tokens_no_bind_beyond_loopback() -> None:
    check_bind("127.0.0.1", TokenTable(), allow_anonymous=False)
    with pytest.raises(TokenConfigError, match="allow-anonymous"):
        check_bind("0.0.0.0", TokenTable(), allow_anonymous=False)
    check_bind("0.0.0.0", TokenTable(), allow_anonymous=True)
    check_bind("0.0.0.0", TokenTable([(ALICE, None, "x")]), allow_anonymous=False)


def test_flags_and_environment() -> None:
    s = settings_from_args(["--tokens-file=/tmp/t", "--max-streams-per-token=3", "--rate-limit=60",
                            "--allow-anonymous", "--no-upstream-usage"],
                           {"TORNADO_SSE_TOKENS": ALICE})
    assert s.tokens_file == "/tmp/t" and s.tokens == ALICE
    assert s.max_streams_per_token == 3 and s.rate_limit == 60
    assert s.allow_anonymous is True and s.upstream_usage is False
    assert ALICE not in repr(s)
    d = settings_from_args([], {})
    assert d.allow_anonymous is False and d.upstream_usage is True and d.tokens is None
    with pytest.raises(SystemExit):
        settings_from_args(["--rate-limit=-1"], {})


@pytest.mark.parametrize("uri", [
    "/ai/streamChat?question=hi&token=abc",
    "/ai/streamChat?TOKEN=abc&question=%E4%BD%A0",
    "/ai/streamChat",
])
def test_error_log_summary_has_no_query_string(uri: str) -> None:
    from types import SimpleNamespace

    from handlers.base import request_summary
    request = SimpleNamespace(method="GET", uri=uri, path=uri.partition("?")[0],
                              remote_ip="127.0.0.1")
    summary = request_summary(SimpleNamespace(request=request))  # type: ignore[arg-type]
    assert summary == "GET /ai/streamChat (127.0.0.1)"
