"""Client tokens: who may use this server. Pure: no I/O beyond reading the file.

Tokens come from ``--tokens-file`` (one ``TOKEN [NAME]`` a line, ``#`` comments)
and/or ``TORNADO_SSE_TOKENS`` (the same entries, separated by newlines or commas).
With none configured every request is the single :data:`ANONYMOUS` client.

A token is never kept, compared or logged in the clear: the table maps a keyed
hash of each token (a per-process random key) to its client. Looking a presented
token up hashes it and finds the digest in a dict; since an attacker can neither
choose digests nor learn the key, the lookup's timing says nothing about any real
token, and the final :func:`hmac.compare_digest` is constant-time regardless.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass

from .config import Settings
from .errors import RequestError

# RFC 6750 b64token: what fits in "Authorization: Bearer" without quoting.
_TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/-]+=*")
MIN_TOKEN_LENGTH = 16
MAX_TOKEN_LENGTH = 512


@dataclass(frozen=True)
class Principal:
    """A client: the name its usage and limits are kept under (never the token)."""

    name: str
    anonymous: bool = False


ANONYMOUS = Principal("anonymous", anonymous=True)


class TokenConfigError(Exception):
    """The token configuration cannot be used. The message never quotes a token."""


class AuthError(RequestError):
    """401: no token, or not one of ours."""

    def __init__(self, code: str = "invalid_token",
                 message: str = "The client token is not valid.") -> None:
        super().__init__(401, code, message)


class MissingToken(AuthError):
    def __init__(self) -> None:
        super().__init__("missing_token", "A client token is required (Authorization: Bearer TOKEN).")


class InvalidToken(AuthError):
    pass


def parse_entries(text: str, source: str, *, commas: bool = False) -> list[tuple[str, str | None, str]]:
    """``(token, name or None, where)`` for each entry; ``where`` locates it for errors."""
    lines = re.split(r"[\n,]" if commas else r"\n", text)
    out: list[tuple[str, str | None, str]] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source} entry {number}" if commas else f"{source} line {number}"
        token, *rest = line.split(None, 1)
        name = rest[0] if rest else ""
        if not _TOKEN_RE.fullmatch(token):
            raise TokenConfigError(f"{where}: a token may only contain A-Z a-z 0-9 . _ ~ + / - "
                                   "and trailing '='")
        if not MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH:
            raise TokenConfigError(
                f"{where}: a token must be {MIN_TOKEN_LENGTH} to {MAX_TOKEN_LENGTH} characters "
                "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        out.append((token, name.strip() or None, where))
    return out


class TokenTable:
    def __init__(self, entries: list[tuple[str, str | None, str]] | None = None) -> None:
        self._key = secrets.token_bytes(32)
        # digest -> (digest, client): the stored digest is what is compared.
        self._by_digest: dict[bytes, tuple[bytes, Principal]] = {}
        names: set[str] = set()
        for index, (token, name, where) in enumerate(entries or [], 1):
            principal = Principal(name or f"token-{index}")
            if principal.name == ANONYMOUS.name:
                raise TokenConfigError(f"{where}: the name 'anonymous' is reserved")
            if principal.name in names:
                raise TokenConfigError(f"{where}: the name {principal.name!r} is used twice")
            digest = self._digest(token)
            if digest in self._by_digest:
                raise TokenConfigError(f"{where}: the same token is listed twice")
            names.add(principal.name)
            self._by_digest[digest] = (digest, principal)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenTable:
        entries: list[tuple[str, str | None, str]] = []
        if settings.tokens_file:
            try:
                with open(settings.tokens_file, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise TokenConfigError(
                    f"cannot read --tokens-file {settings.tokens_file!r}: "
                    f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
            entries += parse_entries(text, settings.tokens_file)
            if not entries:
                # An empty file would silently turn authentication off.
                raise TokenConfigError(f"--tokens-file {settings.tokens_file!r} holds no token")
        if settings.tokens:
            entries += parse_entries(settings.tokens, "TORNADO_SSE_TOKENS", commas=True)
        return cls(entries)

    def _digest(self, token: str) -> bytes:
        return hashlib.blake2b(token.encode("utf-8", "surrogateescape"), key=self._key,
                               digest_size=32).digest()

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    @property
    def names(self) -> list[str]:
        return sorted(p.name for _, p in self._by_digest.values())

    def authenticate(self, presented: str | None) -> Principal:
        """The client owning ``presented``; raises :class:`AuthError` (401).

        Without configured tokens everyone is :data:`ANONYMOUS`, whatever they send.
        """
        if not self._by_digest:
            return ANONYMOUS
        if not presented:
            raise MissingToken()
        digest = self._digest(presented)
        entry = self._by_digest.get(digest)
        # Belt and braces: the final comparison is constant-time too, so no
        # code path short-circuits on the bytes of anything secret.
        if entry is None or not hmac.compare_digest(entry[0], digest):
            raise InvalidToken()
        return entry[1]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # "" (all interfaces), "0.0.0.0" parses; other names: assume reachable


def check_bind(host: str, table: TokenTable, allow_anonymous: bool) -> None:
    """Refuse to serve an open relay (our upstream key, anyone's requests) beyond loopback."""
    if table.enabled or allow_anonymous or is_loopback(host):
        return
    raise TokenConfigError(
        f"refusing to listen on {host or 'all interfaces'!s} without client tokens: anyone "
        "who can reach it could spend the upstream key. Give --tokens-file or "
        "TORNADO_SSE_TOKENS, or --allow-anonymous if that is really intended.")
