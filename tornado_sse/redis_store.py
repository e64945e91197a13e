"""A stream store shared through Redis, so any process can resume or stop any stream.

The process relaying a stream keeps it in its :class:`MemoryStore` (local listeners
and local resumes never touch Redis) and mirrors it to a Redis Stream:

``<prefix>s:<id>``   entry ``0-1`` = start; updates as entries ``<last-seq>-0`` whose
                     fields map each seq to its text (several deltas per entry when
                     they were pushed within one flush); ``<N+1>-0`` = end, one past
                     the last update like the ``end`` event's id. Trimmed with
                     ``MINID`` to the local replay log's window; ``EXPIRE`` bounds it.
``<prefix>o:<id>``   the owner, when the stream has one.
``<prefix>w:<id>``   set (with a short expiry) while a process follows the stream for
                     its clients, so the relaying process keeps the upstream running
                     past the grace window.
``<prefix>stop``     pub/sub channel of Stop requests (the message is the stream id).

The hot path never waits for Redis: a delta is appended to a list, and a writer task
sends everything pending every 20 ms in one pipeline -- one ``XADD`` per stream per
flush, however many deltas it got. A process asked to resume a stream it
does not relay builds a mirror :class:`StreamSession` from ``XRANGE`` and feeds it
from ``XREAD BLOCK``; its clients attach to the mirror as to any session. If Redis
fails, streams keep flowing locally; only cross-process resume and stop suffer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .errors import SAFE_MESSAGES, RequestError, StreamError
from .memory_store import MemoryStore
from .resume import may_access
from .session import Outcome, StreamSession
from .store import StopResult, StoreError

log = logging.getLogger("tornado_sse.store")

# Seconds of deltas gathered into one pipeline. Redis-py's cost is per command, so
# the CPU per mirrored delta falls with deltas per XADD (1,000 streams at ~500 deltas/s
# each: 7.4 us per delta at 5 ms, 4.8 us at 20 ms). Only clients following from
# another process see this delay; the relaying process's own clients never wait.
FLUSH_DELAY = 0.02
LIVE_TTL = 300  # seconds a live stream's keys outlive the last refresh (a crashed relay)
LIVE_REFRESH = 60.0  # refresh that expiry this often while deltas flow
END_TTL_MIN = 5  # followers elsewhere must still find the end, even with --resume-ttl=0
BLOCK_MS = 1000  # one XREAD BLOCK; a follower re-announces itself between blocks
WATCH_MS = 3000  # expiry of a follower's announcement (three blocks)
READY_TIMEOUT = 10.0
# Deltas waiting for a slow or unreachable Redis, at most: past it, deltas are not
# mirrored (followers elsewhere see a gap and end with slow_client), never memory.
MAX_PENDING = 200_000

_START, _UPDATE, _END = 0, 1, 2


def describe(url: str) -> str:
    """``host:port/db`` of a Redis URL: never the password, for logs and errors."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"


def _end_fields(outcome: Outcome) -> dict[str, str]:
    data: dict[str, Any] = {"reason": outcome.reason}
    if outcome.usage is not None:
        data["usage"] = outcome.usage
    if outcome.error is not None:
        # The code only: the detail may hold upstream text and stays in our log.
        data["error"] = outcome.error.code
    return {"end": json.dumps(data, ensure_ascii=False)}


def _outcome_from(raw: str) -> Outcome:
    data = json.loads(raw)
    code = data.get("error")
    error = StreamError(code, "ended in another process") if code in SAFE_MESSAGES else None
    return Outcome(str(data.get("reason", "error")), error=error, usage=data.get("usage"))


def _seq_of(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


class RedisStore:
    def __init__(self, url: str, local: MemoryStore, *, prefix: str = "tornado_sse:",
                 ttl: float = 60.0) -> None:
        self.local = local
        self.url = describe(url)
        self.prefix = prefix
        self.end_ttl = max(END_TTL_MIN, round(ttl))
        # Untyped on purpose: redis-py's command methods return "T | Awaitable[T]".
        self.redis: Any = aioredis.Redis.from_url(
            url, decode_responses=True, protocol=2, socket_connect_timeout=5,
            socket_timeout=10, health_check_interval=30)
        self._pending: list[tuple[Any, ...]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._refreshed: dict[str, float] = {}  # stream id -> when its expiry was pushed back
        self._trimmed: dict[str, int] = {}  # stream id -> MINID last sent
        self._mirrors: dict[str, StreamSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready: asyncio.Future[None] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._stop_local: Callable[[str], None] = lambda _id: None
        self._last_warning = 0.0

    def _key(self, kind: str, stream_id: str) -> str:
        return f"{self.prefix}{kind}:{stream_id}"

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _warn(self, what: str, exc: BaseException) -> None:
        # Redis down under load would fail every flush: one line per 10 s is enough.
        now = time.monotonic()
        if now - self._last_warning >= 10:
            self._last_warning = now
            log.warning("redis %s: %s failed: %r", self.url, what, exc)

    # -- StreamStore: lifecycle --------------------------------------------------------

    def start(self, stop_local: Callable[[str], None]) -> None:
        self.local.start(stop_local)
        self._stop_local = stop_local
        self._ready = asyncio.get_running_loop().create_future()
        self._writer_task = self._spawn(self._writer())
        self._spawn(self._listen_for_stops())

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        assert self._ready is not None, "start() first"
        try:
            await asyncio.wait_for(self.redis.ping(), timeout)  # fails fast if refused
            await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except (TimeoutError, RedisError, OSError):
            raise StoreError(f"cannot reach Redis at {self.url}") from None

    async def close(self) -> None:
        self._closing = True
        self._wake.set()  # the writer flushes what is pending (ends included), then returns
        for task in list(self._tasks):
            if task is not self._writer_task:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.local.close()
        await self.redis.aclose()

    # -- StreamStore: the streams this process relays ---------------------------------

    def create(self, owner: str | None = None) -> StreamSession:
        session = self.local.create(owner)
        session.recorder = self
        self._enqueue((_START, session))
        return session

    def discard(self, session: StreamSession) -> None:
        self.local.discard(session)
        self._enqueue((_END, session))

    def ended(self, session: StreamSession) -> None:
        self.local.ended(session)
        if session.recorder is self:
            self._enqueue((_END, session))

    def record_update(self, session: StreamSession, seq: int, content: str) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._warn("keeping up", OverflowError(f"{MAX_PENDING} deltas unsent; dropping"))
            return
        self._enqueue((_UPDATE, session, seq, content))

    def _enqueue(self, item: tuple[Any, ...]) -> None:
        self._pending.append(item)
        if not self._wake.is_set():
            self._wake.set()

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            if not self._closing:
                await asyncio.sleep(FLUSH_DELAY)
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                await self._write(batch)
            if self._closing and not self._pending:
                return

    async def _write(self, batch: list[tuple[Any, ...]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        now = time.monotonic()
        # Deltas of one stream within this batch become one entry.
        groups: dict[str, tuple[StreamSession, dict[str, str], int]] = {}

        def emit(stream_id: str) -> None:
            session, fields, last = groups.pop(stream_id)
            key = self._key("s", stream_id)
            first_kept = min(session.first_kept_seq, last)
            minid = None
            if first_kept > self._trimmed.get(stream_id, 1):
                self._trimmed[stream_id] = first_kept
                minid = f"{first_kept}-0"
            pipe.xadd(key, fields, id=f"{last}-0", minid=minid, approximate=False)
            if now - self._refreshed.get(stream_id, now) >= LIVE_REFRESH:
                self._refreshed[stream_id] = now
                pipe.expire(key, LIVE_TTL)
                if session.owner is not None:
                    pipe.expire(self._key("o", stream_id), LIVE_TTL)

        for item in batch:
            kind, session = item[0], item[1]
            sid = session.id
            if kind == _UPDATE:
                group = groups.get(sid)
                if group is None:
                    groups[sid] = (session, {str(item[2]): item[3]}, item[2])
                else:
                    group[1][str(item[2])] = item[3]
                    groups[sid] = (session, group[1], item[2])
            elif kind == _START:
                key = self._key("s", sid)
                pipe.xadd(key, {"start": "1"}, id="0-1")
                pipe.expire(key, LIVE_TTL)
                if session.owner is not None:
                    pipe.set(self._key("o", sid), session.owner, ex=LIVE_TTL)
                self._refreshed[sid] = now
            else:
                if sid in groups:
                    emit(sid)
                key = self._key("s", sid)
                if session.outcome is not None:
                    pipe.xadd(key, _end_fields(session.outcome), id=f"{session.seq + 1}-0")
                    pipe.expire(key, self.end_ttl)
                    if session.owner is not None:
                        pipe.expire(self._key("o", sid), self.end_ttl)
                else:  # discarded before it started
                    pipe.delete(key, self._key("o", sid))
                self._refreshed.pop(sid, None)
                self._trimmed.pop(sid, None)
        for sid in list(groups):
            emit(sid)
        try:
            results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            self._warn("writing streams", exc)
            return
        for result in results:
            if isinstance(result, Exception):
                self._warn("writing a stream", result)
                break

    # -- StreamStore: streams relayed elsewhere ----------------------------------------

    async def find(self, stream_id: str) -> StreamSession | None:
        session = self.local.get(stream_id)
        if session is not None:
            return session
        mirror = self._mirrors.get(stream_id)
        if mirror is not None:
            return mirror
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xrange(self._key("s", stream_id))
            pipe.get(self._key("o", stream_id))
            entries, owner = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._warn("reading a stream", exc)
            raise RequestError(503, "resume_unavailable",
                               "Resuming is unavailable right now; try again shortly.",
                               retry_after=1) from None
        if not entries:
            return None
        # Outside the global budget: a mirror lives only while clients of this
        # process follow it, and its log is bounded per stream like any other.
        mirror = StreamSession(stream_id, buffer_bytes=self.local.buffer_bytes, owner=owner,
                               seq=self._seq_before(entries))
        last_id = self._apply(mirror, entries)
        if mirror.ended:
            return mirror  # replayed by the caller; nothing to follow
        log.info("stream %s: following it from Redis (relayed by another process)", stream_id)
        self._mirrors[stream_id] = mirror
        self._spawn(self._follow(mirror, last_id))
        return mirror

    @staticmethod
    def _seq_before(entries: list[tuple[str, dict[str, str]]]) -> int:
        entry_id, fields = entries[0]
        if "start" in fields:
            return 0
        if "end" in fields:
            return _seq_of(entry_id) - 1
        return min(int(k) for k in fields) - 1

    def _apply(self, mirror: StreamSession, entries: list[tuple[str, dict[str, str]]],
               last_id: str = "0-0") -> str:
        for entry_id, fields in entries:
            last_id = entry_id
            if "start" in fields:
                continue
            if "end" in fields:
                mirror.end(_outcome_from(fields["end"]))
                break
            for key, text in fields.items():
                seq = int(key)
                if seq <= mirror.seq:
                    continue
                if seq != mirror.seq + 1:
                    # Trimmed before we read it: this follower fell too far behind.
                    mirror.end(Outcome("error", StreamError(
                        "slow_client", f"missed deltas {mirror.seq + 1}..{seq - 1} in Redis")))
                    return last_id
                mirror.push(text)
        return last_id

    async def _follow(self, mirror: StreamSession, last_id: str) -> None:
        key, watch = self._key("s", mirror.id), self._key("w", mirror.id)
        try:
            while not mirror.ended:
                await self.redis.set(watch, "1", px=WATCH_MS)
                reply = await self.redis.xread({key: last_id}, block=BLOCK_MS, count=512)
                if not mirror.listeners:
                    return  # every client of this process left
                if not reply:
                    if not await self.redis.exists(key):
                        mirror.end(Outcome("error", StreamError(
                            "upstream_disconnected", "stream expired in Redis while followed")))
                    continue
                for _name, entries in reply:
                    last_id = self._apply(mirror, entries, last_id)
        except (RedisError, OSError) as exc:
            self._warn("following a stream", exc)
            if not mirror.ended:
                mirror.end(Outcome("error", StreamError("upstream_disconnected", repr(exc))))
        finally:
            if self._mirrors.get(mirror.id) is mirror:
                del self._mirrors[mirror.id]

    async def listened_elsewhere(self, stream_id: str) -> bool:
        return bool(await self.redis.exists(self._key("w", stream_id)))

    async def stop_elsewhere(self, stream_id: str, requester: str | None) -> StopResult:
        if self.local.get(stream_id) is not None:
            return await self.local.stop_elsewhere(stream_id, requester)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xrevrange(self._key("s", stream_id), count=1)
            pipe.get(self._key("o", stream_id))
            last, owner = await pipe.execute()
            if not last:
                return StopResult("unknown")
            if not may_access(owner, requester):
                return StopResult("forbidden")
            fields = last[0][1]
            if "end" in fields:
                return StopResult("ended", _outcome_from(fields["end"]).reason)
            await self.redis.publish(f"{self.prefix}stop", stream_id)
        except (RedisError, OSError) as exc:
            self._warn("sending a stop", exc)
            raise RequestError(503, "stop_unavailable",
                               "Stopping is unavailable right now; try again shortly.",
                               retry_after=1) from None
        return StopResult("stopping")

    async def _listen_for_stops(self) -> None:
        assert self._ready is not None
        while not self._closing:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(f"{self.prefix}stop")
                if not self._ready.done():
                    self._ready.set_result(None)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._stop_local(str(message["data"]))
            except (RedisError, OSError) as exc:
                self._warn("listening for stops", exc)
                await asyncio.sleep(1.0)
            finally:
                await pubsub.aclose()



def ping(url: str) -> None:
    """Check, without an event loop, that Redis answers (before forking workers)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except (RedisError, OSError):
        raise StoreError(f"cannot reach Redis at {describe(url)}") from None
    finally:
        client.close()
