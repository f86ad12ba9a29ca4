"""Brute-force throttling and flood limits, sans-I/O (time passed in), with bounded memory.

`FailureThrottle` counts authentication failures per key. Callers use two kinds of keys:

* the source address (``ip:203.0.113.5``): a cracker is slowed, then blocked, with the block
  doubling on each further failure up to a cap;
* the ID (``id:example.op.local/booth01``) *together with* the source: once an ID has drawn
  many failures, sources that have failed against it are refused, while a source with no
  failures (the real user at another address) still gets through. Blocking the ID outright
  would let any attacker lock a booth out.

`RateLimiter` is a token bucket per key (a REGISTER flood from one address, or the whole
server), answered with 503 + Retry-After by the registrar rather than queued.

Memory is bounded by LRU eviction: forgetting the oldest entries only ever makes the limits
more lenient for those keys, never blocks someone wrongly.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    OK = "ok"
    THROTTLED = "throttled"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class Verdict:
    level: Level
    retry_after: float = 0.0

    @property
    def allowed(self) -> bool:
        return self.level is Level.OK


OK = Verdict(Level.OK)


@dataclass
class _State:
    failures: int = 0
    last_failure: float = 0.0
    not_before: float = 0.0
    blocked: bool = False


class FailureThrottle:
    """After ``throttle_after`` failures each attempt must wait (doubling from
    ``base_delay``); after ``block_after`` the key is blocked for ``block_for`` seconds,
    doubling on every further failure up to ``max_block``. ``forget_after`` seconds without a
    failure clears a key."""

    def __init__(
        self,
        *,
        throttle_after: int = 5,
        block_after: int = 10,
        base_delay: float = 1.0,
        block_for: float = 60.0,
        max_block: float = 3600.0,
        forget_after: float = 900.0,
        max_keys: int = 100_000,
    ) -> None:
        self.throttle_after = throttle_after
        self.block_after = block_after
        self.base_delay = base_delay
        self.block_for = block_for
        self.max_block = max_block
        self.forget_after = forget_after
        self.max_keys = max_keys
        self._keys: OrderedDict[str, _State] = OrderedDict()

    def _get(self, key: str, now: float) -> _State | None:
        state = self._keys.get(key)
        if state is None:
            return None
        if now - state.last_failure > self.forget_after and now >= state.not_before:
            del self._keys[key]
            return None
        return state

    def check(self, key: str, now: float) -> Verdict:
        state = self._get(key, now)
        if state is None or now >= state.not_before:
            return OK
        level = Level.BLOCKED if state.blocked else Level.THROTTLED
        return Verdict(level, state.not_before - now)

    def failures(self, key: str, now: float) -> int:
        state = self._get(key, now)
        return 0 if state is None else state.failures

    def failure(self, key: str, now: float) -> Verdict:
        state = self._get(key, now)
        if state is None:
            state = _State()
            self._keys[key] = state
        self._keys.move_to_end(key)
        state.failures += 1
        state.last_failure = now
        f = state.failures
        if f >= self.block_after:
            duration = min(self.max_block, self.block_for * 2 ** min(f - self.block_after, 30))
            state.blocked = True
            state.not_before = now + duration
        elif f >= self.throttle_after:
            state.not_before = now + min(
                self.max_block, self.base_delay * 2 ** (f - self.throttle_after)
            )
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return self.check(key, now)

    def success(self, key: str) -> None:
        self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)


class AuthGuard:
    """The two-key policy of the module docstring, for SIP and web logins alike."""

    def __init__(
        self,
        per_source: FailureThrottle | None = None,
        per_id: FailureThrottle | None = None,
        pairs: FailureThrottle | None = None,
        *,
        id_alarm: int = 20,
    ) -> None:
        self.per_source = per_source or FailureThrottle()
        # Per-ID counters never block by themselves: they only arm the pair check.
        self.per_id = per_id or FailureThrottle(
            throttle_after=10**9, block_after=10**9, forget_after=3600.0
        )
        self.pairs = pairs or FailureThrottle(throttle_after=3, block_after=5)
        self.id_alarm = id_alarm

    def check_source(self, source: str, now: float) -> Verdict:
        return self.per_source.check(source, now)

    def check(self, source: str, ident: str, now: float) -> Verdict:
        verdict = self.per_source.check(source, now)
        if not verdict.allowed:
            return verdict
        pair = f"{ident}\x00{source}"
        verdict = self.pairs.check(pair, now)
        if not verdict.allowed:
            return verdict
        if self.per_id.failures(ident, now) >= self.id_alarm and self.pairs.failures(pair, now) > 0:
            return Verdict(Level.BLOCKED, self.per_source.block_for)
        return OK

    def failure(self, source: str, ident: str, now: float) -> None:
        self.per_source.failure(source, now)
        self.per_id.failure(ident, now)
        self.pairs.failure(f"{ident}\x00{source}", now)

    def success(self, source: str, ident: str) -> None:
        self.per_source.success(source)
        self.pairs.success(f"{ident}\x00{source}")


class RateLimiter:
    """Token buckets per key: ``rate`` per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float, cost: float = 1.0) -> Verdict:
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        if tokens < cost:
            self._buckets[key] = (tokens, now)
            self._buckets.move_to_end(key)
            wait = (cost - tokens) / self.rate if self.rate > 0 else math.inf
            return Verdict(Level.THROTTLED, wait)
        self._buckets[key] = (tokens - cost, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return OK

    def __len__(self) -> int:
        return len(self._buckets)
