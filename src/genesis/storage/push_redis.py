"""The push broker across workers: Redis streams with one global sequence number per channel.

Each channel has a hash ``<prefix>:push:{<channel>}:m`` (``epoch``, ``seq``) and a stream
``...:s`` whose entry ids are ``<seq>-0``. One Lua script increments ``seq`` and appends
the entry atomically, so every worker sees the same messages in the same order under the
same numbers. Each worker runs one reader task that ``XREAD``s the streams of the channels
it has local subscribers for and feeds its :class:`~genesis.push.hub.Hub`; a channel that
gains its first local subscriber is primed from the stream (its newest messages, for
replay) and the reader continues right after them, so a fresh worker resumes a client's
token from Redis and killing a worker loses nothing resumption cannot recover.

When Redis loses its data (a restart without persistence, eviction, a failover to a
replica that was behind), a new epoch starts, numbered from 1; readers notice it by the
epoch check (every ``check_seconds``, and after each reconnect) and subscribers get an
``epoch`` gap notice instead of messages that merely reuse numbers. A worker that sees the
counter *behind* what it already delivered under the same epoch (an older snapshot was
restored) forces a new epoch for the same reason.

Redis Cluster is not supported (one ``XREAD`` spans many channels); a single Redis or a
Sentinel-managed primary is. Keys are hash-tagged per channel all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from genesis.errors import Unavailable
from genesis.push.envelope import Message, make_message
from genesis.push.hub import Feed, Snapshot, new_epoch

log = logging.getLogger("genesis.push.redis")

# Shared by both scripts: the channel's epoch, created or repaired first.
# - meta present and consistent with the stream: keep it;
# - meta lost but the stream survived: continue the stream's epoch and numbering;
# - nothing to continue from, or a counter behind its stream (restored from an older state),
#   or the caller saw numbers this counter has not reached (ARGV[2], ARGV[3]): a new epoch
#   from 1, with the stream emptied so no entry id is reused.
_ENSURE = """
local function ensure(meta, stream, candidate, seen_epoch, seen_seq)
  local epoch = redis.call('HGET', meta, 'epoch')
  local top = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  local top_seq, top_epoch = 0, false
  if #top > 0 then
    top_seq = tonumber(string.match(top[1][1], '^(%d+)'))
    local fields = top[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == 'e' then top_epoch = fields[i + 1] end
    end
  end
  if not epoch and top_epoch then
    epoch = top_epoch
    redis.call('HSET', meta, 'epoch', top_epoch, 'seq', top_seq)
  end
  if epoch then
    local seq = tonumber(redis.call('HGET', meta, 'seq') or '0')
    local behind = seen_epoch == epoch and seq < seen_seq
    if top_seq <= seq and (not top_epoch or top_epoch == epoch) and not behind then
      return epoch
    end
  end
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', candidate, 'seq', 0)
  return candidate
end
"""

# KEYS: meta, stream. ARGV: maxlen, candidate epoch, topic, type, time, data, owner.
_APPEND = _ENSURE + """
local epoch = ensure(KEYS[1], KEYS[2], ARGV[2], false, 0)
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], seq .. '-0',
           'e', epoch, 't', ARGV[3], 'y', ARGV[4], 'ts', ARGV[5], 'd', ARGV[6], 'o', ARGV[7])
return {epoch, seq}
"""

# KEYS: meta, stream. ARGV: candidate epoch, epoch seen here ('' if none), head seen here, count.
_PRIME = _ENSURE + """
local seen = ARGV[2]
if seen == '' then seen = false end
local epoch = ensure(KEYS[1], KEYS[2], ARGV[1], seen, tonumber(ARGV[3]))
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
local entries = {}
if tonumber(ARGV[4]) > 0 then
  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[4])
end
return {epoch, seq, entries}
"""

_CONNECTION_ERRORS = (RedisError, OSError)


class RedisBroker:
    """Numbers messages in Redis and feeds one hub with the channels it watches.

    Args:
        url: ``redis://host:port/db``.
        key_prefix: the deployment's key prefix (``Settings.key_prefix``); keys are ``<prefix>:push:...``.
        stream_maxlen: messages kept per channel (``XADD MAXLEN ~``): the cross-worker replay window.
        block_ms: how long one ``XREAD`` waits for news.
        check_seconds: how often the reader compares each watched channel's epoch with Redis.
        backoff: first and longest pause between reconnection attempts (full jitter in between).
    """

    def __init__(
        self, url: str, *, key_prefix: str = "genesis", stream_maxlen: int = 1000, block_ms: int = 2000,
        check_seconds: float = 5.0, backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        self._prefix = f"{key_prefix}:push"
        self._maxlen = stream_maxlen
        self._block_ms = block_ms
        self._check_seconds = check_seconds
        self._backoff = backoff
        common: dict[str, Any] = {"socket_connect_timeout": 2.0, "decode_responses": False}
        self._client = aioredis.Redis.from_url(url, socket_timeout=2.0, **common)
        # A blocking XREAD holds its connection: the reader gets its own, with room for the block.
        self._reader = aioredis.Redis.from_url(url, socket_timeout=block_ms / 1000 + 5.0,
                                               single_connection_client=True, client_name="genesis-push-reader",
                                               **common)
        self._append_script = self._client.register_script(_APPEND)
        self._prime_script = self._client.register_script(_PRIME)
        self._wake_key = f"{self._prefix}:wake:{secrets.token_hex(8)}"
        self._wake_last = b"0-0"
        self._cursors: dict[str, int] = {}  # channel -> last sequence number fed to the hub
        self._epochs: dict[str, str] = {}
        self._stream_channels: dict[bytes, str] = {}
        self._feed: Feed | None = None
        self._task: asyncio.Task[None] | None = None
        self._resync = False
        self._down = False
        self._stopping = False

    def stream_key(self, channel: str) -> str:
        return f"{self._prefix}:{{{channel}}}:s"

    def meta_key(self, channel: str) -> str:
        return f"{self._prefix}:{{{channel}}}:m"

    # --- the Broker protocol ----------------------------------------------------------------------

    async def start(self, feed: Feed) -> None:
        """Start the reader task (it keeps retrying while Redis is unreachable)."""
        self._feed = feed
        self._task = asyncio.create_task(self._run(), name="genesis-push-reader")

    async def append(
        self, channel: str, *, topic: str, type: str, time: str, data_json: bytes, owner: str | None,
    ) -> Message:
        """Number and store one message on ``channel``.

        Raises:
            Unavailable: Redis did not answer (the message may or may not have been stored).
        """
        try:
            epoch_raw, seq = await self._append_script(
                keys=[self.meta_key(channel), self.stream_key(channel)],
                args=[self._maxlen, new_epoch(), topic, type, time, data_json, owner or ""],
            )
        except _CONNECTION_ERRORS as exc:
            raise Unavailable("the push broker (redis) is unavailable", component="redis") from exc
        epoch = epoch_raw.decode()
        if channel in self._epochs and self._epochs[channel] != epoch:
            await self._request_resync()
        return make_message(topic=topic, epoch=epoch, seq=int(seq), type=type, time=time, data_json=data_json,
                            owner=owner)

    async def watch(self, channel: str, *, count: int) -> Snapshot:
        """Prime ``channel`` (epoch, last number, newest ``count`` messages) and start reading it.

        Raises:
            Unavailable: Redis did not answer.
        """
        try:
            snapshot = await self._prime(channel, count)
        except _CONNECTION_ERRORS as exc:
            raise Unavailable("the push broker (redis) is unavailable", component="redis") from exc
        self._cursors[channel] = snapshot.head
        self._epochs[channel] = snapshot.epoch
        self._stream_channels[self.stream_key(channel).encode()] = channel
        await self._wake_reader()
        return snapshot

    def unwatch(self, channel: str) -> None:
        """Stop reading ``channel`` (its history stays in Redis)."""
        self._cursors.pop(channel, None)
        self._epochs.pop(channel, None)
        self._stream_channels.pop(self.stream_key(channel).encode(), None)

    async def close(self) -> None:
        """Stop the reader and close the connections."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            # Wake the reader rather than cancel it: cancelling a blocked XREAD does not return
            # (redis-py 8.1), while a woken reader sees the flag and ends on its own.
            await self._wake_reader()
            done, _ = await asyncio.wait({task}, timeout=self._block_ms / 1000 + 2.0)
            if not done:
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
        with contextlib.suppress(*_CONNECTION_ERRORS):
            await self._client.delete(self._wake_key)
        for client in (self._reader, self._client):
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await client.aclose()

    # --- internals ------------------------------------------------------------------------------

    async def _prime(self, channel: str, count: int) -> Snapshot:
        seen_epoch = self._epochs.get(channel, "")
        seen_head = self._cursors.get(channel, 0) if seen_epoch else 0
        epoch_raw, head, entries = await self._prime_script(
            keys=[self.meta_key(channel), self.stream_key(channel)],
            args=[new_epoch(), seen_epoch, seen_head, count],
        )
        messages = [self._message(entry_id, fields) for entry_id, fields in reversed(entries)]
        return Snapshot(epoch_raw.decode(), int(head), messages)

    @staticmethod
    def _message(entry_id: bytes, fields: list[bytes] | dict[bytes, bytes]) -> Message:
        if isinstance(fields, list):  # a Lua reply: flat field/value list
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        owner = fields[b"o"].decode()
        return make_message(
            topic=fields[b"t"].decode(), epoch=fields[b"e"].decode(), seq=int(entry_id.split(b"-", 1)[0]),
            type=fields[b"y"].decode(), time=fields[b"ts"].decode(), data_json=fields[b"d"], owner=owner or None,
        )

    async def _wake_reader(self) -> None:
        """Interrupt the reader's blocking XREAD so it picks up a new channel now, not after ``block_ms``."""
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.xadd(self._wake_key, {"w": "1"}, maxlen=1, approximate=False)
                pipe.expire(self._wake_key, 3600)
                await pipe.execute()
        except _CONNECTION_ERRORS:
            pass  # the reader is reconnecting anyway and will include the channel then

    async def _request_resync(self) -> None:
        self._resync = True
        await self._wake_reader()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        pause = self._backoff[0]
        next_check = loop.time() + self._check_seconds
        while not self._stopping:
            try:
                if self._resync or loop.time() >= next_check:
                    await self._check_epochs()
                    next_check = loop.time() + self._check_seconds
                streams: dict[Any, Any] = {self.stream_key(ch): f"{seq}-0" for ch, seq in self._cursors.items()}
                streams[self._wake_key] = self._wake_last
                reply: Any = await self._reader.xread(streams, count=500, block=self._block_ms)
                if self._down:
                    log.warning("push broker: redis is reachable again; streams resumed")
                    self._down = False
                pause = self._backoff[0]
                if not self._stopping:
                    self._dispatch(reply or [])
            except asyncio.CancelledError:
                raise
            except _CONNECTION_ERRORS as exc:
                if not self._down:
                    log.warning("push broker: redis failed (%s); reconnecting with backoff", type(exc).__name__)
                    self._down = True
                self._resync = True
                await asyncio.sleep(random.uniform(pause / 2, pause))
                pause = min(pause * 2, self._backoff[1])
            except Exception:  # a bug must not end delivery for the whole worker
                log.exception("push broker: reader error")
                await asyncio.sleep(pause)
                pause = min(pause * 2, self._backoff[1])

    def _dispatch(self, reply: list[Any]) -> None:
        assert self._feed is not None
        for key, entries in reply:
            if key == self._wake_key.encode():
                if entries:
                    self._wake_last = entries[-1][0]
                continue
            channel = self._stream_channels.get(key)
            if channel is None:
                continue  # unwatched meanwhile
            for entry_id, fields in entries:
                if fields is None:
                    continue
                message = self._message(entry_id, fields)
                if channel not in self._cursors or message.seq <= self._cursors[channel]:
                    continue
                if message.epoch != self._epochs.get(channel):
                    self._resync = True  # a new epoch: the check re-primes the channel
                    break
                self._cursors[channel] = message.seq
                self._feed.deliver(channel, message)

    async def _check_epochs(self) -> None:
        """Re-prime every watched channel whose epoch or counter no longer matches what was fed."""
        self._resync = False
        channels = list(self._cursors)
        if not channels:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for channel in channels:
                pipe.hmget(self.meta_key(channel), "epoch", "seq")
            states = await pipe.execute()
        for channel, (epoch, seq) in zip(channels, states, strict=True):
            known = self._epochs.get(channel)
            if known is None:
                continue
            if epoch is not None and epoch.decode() == known and int(seq or 0) >= self._cursors.get(channel, 0):
                continue
            await self._rebase(channel)

    async def _rebase(self, channel: str) -> None:
        assert self._feed is not None
        snapshot = await self._prime(channel, self._maxlen)
        if channel not in self._cursors:
            return  # unwatched while priming
        changed = snapshot.epoch != self._epochs.get(channel)
        self._epochs[channel] = snapshot.epoch
        if changed:
            log.warning("push broker: channel %r starts epoch %s (redis lost or rolled back its state)",
                        channel, snapshot.epoch)
            self._cursors[channel] = snapshot.head
            self._feed.rebase(channel, snapshot)
