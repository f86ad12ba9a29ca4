from __future__ import annotations

from outbound_pro.accounts.throttle import AuthGuard, FailureThrottle, Level, RateLimiter


def test_throttled_then_blocked_with_exponential_backoff() -> None:
    t = FailureThrottle(
        throttle_after=3,
        block_after=5,
        base_delay=1,
        block_for=10,
        max_block=100,
        forget_after=1000,
    )
    now = 0.0
    for _ in range(2):
        assert t.failure("k", now).allowed
    v = t.failure("k", now)  # third failure: throttled for 1 s
    assert v.level is Level.THROTTLED and v.retry_after == 1
    assert t.failure("k", now).retry_after == 2  # 4th: 2 s
    v = t.failure("k", now)  # 5th: blocked 10 s
    assert v.level is Level.BLOCKED and v.retry_after == 10
    assert t.failure("k", now).retry_after == 20
    assert t.failure("k", now).retry_after == 40
    for _ in range(10):
        v = t.failure("k", now)
    assert v.retry_after == 100  # capped
    assert t.check("k", now + 99).level is Level.BLOCKED
    assert t.check("k", now + 100).allowed


def test_forgets_after_quiet_period_and_on_success() -> None:
    t = FailureThrottle(throttle_after=2, block_after=3, forget_after=60, block_for=5)
    t.failure("k", 0)
    t.failure("k", 0)
    assert t.failures("k", 1) == 2
    assert t.failures("k", 100) == 0
    t.failure("j", 0)
    t.success("j")
    assert t.failures("j", 0) == 0


def test_memory_is_bounded() -> None:
    t = FailureThrottle(max_keys=100)
    for i in range(1000):
        t.failure(f"ip:{i}", 0)
    assert len(t) == 100


def test_cracker_is_blocked_but_the_real_user_elsewhere_still_passes() -> None:
    g = AuthGuard(id_alarm=5)
    ident = "example.op.local/booth01"
    now = 0.0
    for i in range(10):
        if g.check("ip:6.6.6.6", ident, now + i).allowed:
            g.failure("ip:6.6.6.6", ident, now + i)
    assert g.check("ip:6.6.6.6", ident, 10).level is Level.BLOCKED
    assert g.check("ip:10.0.0.7", ident, 10).allowed


def test_a_source_spraying_many_ids_is_blocked_for_all() -> None:
    g = AuthGuard()
    for i in range(10):
        g.failure("ip:6.6.6.6", f"d/user{i}", 0)
    assert g.check("ip:6.6.6.6", "d/fresh", 1).level is Level.BLOCKED
    assert g.check_source("ip:6.6.6.6", 1).level is Level.BLOCKED
    assert g.check("ip:10.0.0.7", "d/fresh", 1).allowed


def test_distributed_guessing_trips_the_id_alarm_for_failing_sources_only() -> None:
    g = AuthGuard(id_alarm=5)
    ident = "d/booth01"
    for i in range(6):
        g.failure(f"ip:10.0.0.{i}", ident, 0)
    # each source failed once only, yet the ID is under attack: failing sources are refused
    assert g.check("ip:10.0.0.1", ident, 1).level is Level.BLOCKED
    assert g.check("ip:192.0.2.1", ident, 1).allowed  # a clean source still works


def test_rate_limiter_refills() -> None:
    r = RateLimiter(rate=10, burst=5)
    assert all(r.take("a", 0).allowed for _ in range(5))
    v = r.take("a", 0)
    assert v.level is Level.THROTTLED and abs(v.retry_after - 0.1) < 1e-9
    assert r.take("b", 0).allowed  # other keys unaffected
    assert r.take("a", 0.1).allowed
    big = RateLimiter(rate=1, burst=1, max_keys=10)
    for i in range(50):
        big.take(str(i), 0)
    assert len(big) == 10
