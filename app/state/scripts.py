"""The Lua scripts the shared state store runs. Each touches one key, so it is atomic on its own and
valid on a sharded (cluster-mode) cache such as ElastiCache Serverless; many of them travel in one
pipeline (one round trip).

Numbers cross the boundary as strings: Lua would truncate a number returned to the client to an
integer, and `tostring` keeps only 14 significant digits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from hashlib import sha1


@dataclass(frozen=True)
class Script:
    name: str
    source: str

    @cached_property
    def sha(self) -> str:
        return sha1(self.source.encode(), usedforsecurity=False).hexdigest()

    @cached_property
    def _evalsha_head(self) -> bytes:
        return b"$7\r\nEVALSHA\r\n$40\r\n" + self.sha.encode() + b"\r\n$1\r\n1\r\n"

    def evalsha_command(self, key: str, args: Sequence[str | int | float]) -> bytes:
        """`EVALSHA sha 1 key *args` as RESP bytes, the same a client library writes (one call per request
        and per series on the hot path, so it is written here directly instead of through its encoder)."""
        parts = [b"*%d\r\n" % (4 + len(args)), self._evalsha_head]
        for item in (key, *args):
            data = (item if isinstance(item, str) else repr(item)).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(parts)


# KEYS[1]: the client's bucket (hash: level, at). ARGV: rate per second, burst.
# The store's clock (TIME), not the tasks', so task clocks that disagree cannot widen the limit.
# Returns {1 if allowed else 0, level after the request as a string}. Same arithmetic as
# app/security/ratelimit.py (the per-task fallback).
LEAKY_BUCKET = Script("leaky_bucket", """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(state[1]) or 0
local at = tonumber(state[2]) or now
level = math.max(0, level - math.max(0, now - at) * rate)
local allowed = 0
if level + 1 <= burst + 1e-9 then
  level = level + 1
  allowed = 1
end
local text = string.format('%.17g', level)
redis.call('HSET', KEYS[1], 'level', text, 'at', string.format('%.17g', now))
-- An idle bucket drains to empty in level / rate seconds; then it is the same as no bucket.
redis.call('PEXPIRE', KEYS[1], math.ceil(level / rate * 1000) + 1000)
return {allowed, text}
""")

# KEYS[1]: one series' window (a list of values as strings, oldest first).
# ARGV: window size, ttl seconds, mode, seed count, seed values..., new values...
#   mode 'score': if the window is missing (never built, evicted, expired, store restarted) return
#                 false and change nothing: the caller rebuilds it from PostgreSQL and comes back with
#   mode 'seed':  the stored history, used only if the window is still missing (another task may have
#                 rebuilt it meanwhile);
#   mode 'reset': drop the window and return false (a task that scored this series on its own while
#                 the store was unreachable knows the stored window missed readings).
# Otherwise returns the window as it was before the new values (one space-separated string: far cheaper
# to parse than 50 replies), then appends them (one atomic step).
WINDOW = Script("window", """
local size = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local mode = ARGV[3]
local seeds = tonumber(ARGV[4])
if mode == 'reset' then
  redis.call('DEL', KEYS[1])
  return false
end
local exists = redis.call('EXISTS', KEYS[1]) == 1
if not exists and mode ~= 'seed' then
  return false
end
if not exists and seeds > 0 then
  redis.call('RPUSH', KEYS[1], unpack(ARGV, 5, 4 + seeds))
end
local before = table.concat(redis.call('LRANGE', KEYS[1], 0, -1), ' ')
if #ARGV > 4 + seeds then
  redis.call('RPUSH', KEYS[1], unpack(ARGV, 5 + seeds, #ARGV))
  redis.call('LTRIM', KEYS[1], -size, -1)
end
redis.call('EXPIRE', KEYS[1], ttl)
return before
""")

ALL = (LEAKY_BUCKET, WINDOW)
