"""Settings: one frozen object built from flags and the environment.

No module-level state: everything a component needs is passed to it from a
``Settings`` instance, so tests can build as many differently-configured apps in
one process as they like.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


def default_max_streams() -> int:
    """Streams this process can hold: two sockets each (client + upstream),
    keeping a reserve of descriptors for listeners, logs and Redis."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else soft
    if limit == resource.RLIM_INFINITY:
        limit = 65536
    return max(1, (min(limit, 1 << 20) - 100) // 2)


# Below this a single ordinary event could trip the slow-client cut-off.
MIN_CLIENT_BUFFER = 4096


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8888
    # None means: serve the embedded demo upstream from this process.
    upstream_url: str | None = None
    # Never printed: repr=False keeps it out of logs of the settings object.
    api_key: str | None = field(default=None, repr=False)
    model: str = "gpt-4o-mini"
    heartbeat: float = 15.0
    retry_ms: int = 3000
    connect_timeout: float = 10.0
    first_token_timeout: float = 60.0
    idle_timeout: float = 60.0
    total_timeout: float = 600.0
    max_question_bytes: int = 32 * 1024
    max_body_bytes: int = 1024 * 1024
    max_messages: int = 200
    max_event_bytes: int = 1024 * 1024
    max_streams: int = field(default_factory=default_max_streams)
    # Bytes written to one client but not yet taken by its socket (plus merged
    # text waiting for it); past this the client is cut off with slow_client.
    max_client_buffer: int = 256 * 1024
    temperature_min: float = 0.0
    temperature_max: float = 2.0
    # Pacing of the embedded demo upstream, seconds between tokens.
    demo_delay: float = 0.03
    # Resume and stop (see tornado_sse/store.py).
    resume_window: float = 10.0
    resume_buffer_bytes: int = 256 * 1024
    resume_ttl: float = 60.0
    resume_max_bytes: int = 128 << 20
    redis_url: str | None = field(default=None, repr=False)  # may hold a password
    redis_prefix: str = "tornado_sse:"
    processes: int = 1
    # Client tokens (see tornado_sse/auth.py): a file of "TOKEN [NAME]" lines
    # and/or the same entries from TORNADO_SSE_TOKENS. Neither set: anonymous.
    tokens_file: str | None = None
    tokens: str | None = field(default=None, repr=False)
    allow_anonymous: bool = False
    # Per-token limits (0 = off): concurrent streams, requests per minute.
    max_streams_per_token: int = 0
    rate_limit: int = 0
    # Ask the upstream for a usage chunk (stream_options.include_usage).
    upstream_usage: bool = True
    # Operations: graceful shutdown, logs, CORS, reverse proxy.
    drain_timeout: float = 30.0
    log_format: str = "text"  # or "json"
    log_content: bool = False  # put the question text in access-log lines
    cors_origins: tuple[str, ...] = ()
    xheaders: bool = False  # trust X-Real-IP / X-Forwarded-For from a proxy

    @property
    def uses_demo_upstream(self) -> bool:
        return self.upstream_url is None

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


# (flag, Settings field, type, help). Timeouts of 0 mean "off". A ``list`` type
# makes a repeatable flag (its field is a tuple).
_FLAGS: list[tuple[str, str, type, str]] = [
    ("--host", "host", str, "address to listen on"),
    ("--port", "port", int, "port to listen on"),
    ("--upstream-url", "upstream_url", str,
     "OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1 (env OPENAI_BASE_URL); "
     "unset: the embedded demo upstream"),
    ("--model", "model", str, "default model (env OPENAI_MODEL)"),
    ("--heartbeat", "heartbeat", float, "seconds of silence before a ': heartbeat' comment"),
    ("--retry-ms", "retry_ms", int, "reconnection delay sent to clients as 'retry:'"),
    ("--connect-timeout", "connect_timeout", float, "seconds to connect to the upstream (0 = off)"),
    ("--first-token-timeout", "first_token_timeout", float,
     "seconds from request to first token (0 = off)"),
    ("--idle-timeout", "idle_timeout", float,
     "longest gap between upstream chunks, seconds (0 = off)"),
    ("--total-timeout", "total_timeout", float, "cap on a whole answer, seconds (0 = off)"),
    ("--max-question-bytes", "max_question_bytes", int, "largest question, UTF-8 bytes"),
    ("--max-body-bytes", "max_body_bytes", int, "largest request body, bytes"),
    ("--max-messages", "max_messages", int, "most messages in one conversation"),
    ("--max-event-bytes", "max_event_bytes", int, "largest upstream SSE event, bytes"),
    ("--max-streams", "max_streams", int,
     "concurrent streams before 503 (default: from the open-file limit)"),
    ("--max-client-buffer", "max_client_buffer", int,
     "bytes buffered for one slow client before it is cut off with slow_client"),
    ("--demo-delay", "demo_delay", float, "seconds between tokens of the embedded demo upstream"),
    ("--resume-window", "resume_window", float,
     "seconds an upstream keeps running after its client left without Stop, waiting for a "
     "reconnect (0 = abort at once)"),
    ("--resume-buffer-bytes", "resume_buffer_bytes", int,
     "text kept per stream for reconnects, UTF-8 bytes (older deltas are dropped)"),
    ("--resume-ttl", "resume_ttl", float, "seconds a finished stream can still be resumed"),
    ("--resume-max-bytes", "resume_max_bytes", int,
     "text kept for reconnects across all streams of a process, bytes"),
    ("--redis-url", "redis_url", str,
     "share streams through Redis (redis://host:port/db) so any process can resume or stop "
     "them; needs the 'redis' extra (env TORNADO_SSE_REDIS_URL)"),
    ("--redis-prefix", "redis_prefix", str, "prefix of every Redis key and channel"),
    ("--processes", "processes", int,
     "worker processes sharing the port (0 = one per CPU); resume across them needs --redis-url"),
    ("--drain-timeout", "drain_timeout", float,
     "on SIGTERM/SIGINT, seconds running streams may take to finish before they are ended"),
    ("--log-format", "log_format", str, "log lines as 'text' or 'json'"),
    ("--cors-origin", "cors_origins", list,
     "allow browser calls from this origin, e.g. https://app.example.com ('*' = any); repeatable"),
    ("--tokens-file", "tokens_file", str,
     "client tokens, one 'TOKEN [NAME]' a line (also env TORNADO_SSE_TOKENS); "
     "set: every /ai/* and /v1/* request needs one"),
    ("--max-streams-per-token", "max_streams_per_token", int,
     "concurrent streams per client token before 429 (0 = off)"),
    ("--rate-limit", "rate_limit", int, "requests per minute per client token before 429 (0 = off)"),
]

# Flags without a value: (flag, Settings field, value set when given, help).
_SWITCHES: list[tuple[str, str, bool, str]] = [
    ("--allow-anonymous", "allow_anonymous", True,
     "serve without client tokens on a non-loopback address"),
    ("--no-upstream-usage", "upstream_usage", False,
     "do not ask the upstream for usage (for upstreams that reject stream_options)"),
    ("--log-content", "log_content", True, "include the question text in access-log lines"),
    ("--xheaders", "xheaders", True,
     "trust X-Real-IP/X-Forwarded-For (only behind a reverse proxy that sets them)"),
]


# The least value each numeric flag accepts (timeouts and limits of 0 mean "off").
_MINIMUMS: dict[str, int] = {
    **dict.fromkeys(("heartbeat", "connect_timeout", "first_token_timeout", "idle_timeout",
                     "total_timeout", "demo_delay", "drain_timeout", "resume_window",
                     "resume_ttl", "max_streams_per_token", "rate_limit", "resume_buffer_bytes",
                     "resume_max_bytes", "processes"), 0),
    **dict.fromkeys(("max_streams", "max_question_bytes", "max_body_bytes", "max_messages",
                     "max_event_bytes"), 1),
    "max_client_buffer": MIN_CLIENT_BUFFER,
}


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Relay streaming LLM chat completions to browsers as Server-Sent Events.",
        epilog="Environment: OPENAI_BASE_URL, OPENAI_API_KEY (never logged), OPENAI_MODEL, "
               "TORNADO_SSE_TOKENS (client tokens, never logged).",
    )
    for flag, name, typ, help_text in _FLAGS:
        default = getattr(defaults, name)
        if typ is list:
            parser.add_argument(flag, dest=name, action="append", default=None, help=help_text,
                                metavar=flag.lstrip("-").upper().replace("-", "_"))
        else:
            parser.add_argument(flag, dest=name, type=typ, default=None,
                                help=f"{help_text} (default: {default})")
    for flag, name, value, help_text in _SWITCHES:
        parser.add_argument(flag, dest=name, action="store_const", const=value, default=None,
                            help=help_text)
    return parser


def settings_from_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Flags win over the environment, which wins over defaults."""
    env = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    values: dict[str, object] = {}
    if env.get("OPENAI_BASE_URL"):
        values["upstream_url"] = env["OPENAI_BASE_URL"]
    if env.get("OPENAI_API_KEY"):
        values["api_key"] = env["OPENAI_API_KEY"]
    if env.get("OPENAI_MODEL"):
        values["model"] = env["OPENAI_MODEL"]
    if env.get("TORNADO_SSE_REDIS_URL"):
        values["redis_url"] = env["TORNADO_SSE_REDIS_URL"]
    if env.get("TORNADO_SSE_TOKENS"):
        values["tokens"] = env["TORNADO_SSE_TOKENS"]
    for name in [f[1] for f in _FLAGS] + [s[1] for s in _SWITCHES]:
        value = getattr(args, name)
        if value is not None:
            values[name] = tuple(value) if isinstance(value, list) else value
    if values.get("log_format", "text") not in ("text", "json"):
        raise SystemExit("run.py: --log-format must be 'text' or 'json'")
    for name, minimum in _MINIMUMS.items():
        if name in values and float(values[name]) < minimum:  # type: ignore[arg-type]
            raise SystemExit(f"run.py: --{name.replace('_', '-')} must be >= {minimum}")
    if not 0 <= int(values.get("port", 0)) <= 65535:  # type: ignore[call-overload]
        raise SystemExit("run.py: --port must be within 0..65535")
    return Settings(**values)  # type: ignore[arg-type]
