"""``RateLimit-*`` and ``Retry-After`` after an ingest call, for any limiter state."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from notifactor.domain.rate_limit import MICROS_PER_DAY, RateRule, whole_seconds
from notifactor.gateway.routes_notifications import rate_headers
from notifactor.ports.ingest import IngestResult, Limited

rules = st.builds(
    RateRule,
    emission_us=st.integers(1, 10_000_000),
    burst=st.integers(1, 1000),
    daily_quota=st.integers(0, 1000),
)
results = st.builds(
    IngestResult,
    outcomes=st.just(()),
    now_us=st.integers(0, 10**17),
    tat_us=st.integers(0, 10**17),
    used_today=st.integers(0, 1100),
)
limited = st.lists(
    st.builds(
        Limited,
        reason=st.sampled_from(["rate", "quota"]),
        retry_after_us=st.integers(0, MICROS_PER_DAY),
    ),
    max_size=5,
)


@given(rules, results, limited)
def test_headers_describe_one_limit_consistently(
    rule: RateRule, result: IngestResult, refused: list[Limited]
) -> None:
    headers = dict(rate_headers(rule, result, refused))
    limit = int(headers["ratelimit-limit"])
    remaining = int(headers["ratelimit-remaining"])
    reset = int(headers["ratelimit-reset"])
    assert 0 <= remaining <= limit
    to_midnight = whole_seconds(MICROS_PER_DAY - result.now_us % MICROS_PER_DAY)
    if rule.daily_quota > 0 and result.used_today >= rule.daily_quota:
        assert (limit, remaining, reset) == (rule.daily_quota, 0, to_midnight)
    if limit == rule.daily_quota and limit != rule.burst:
        assert reset == to_midnight
    if refused:
        wait = min(r.retry_after_us for r in refused)
        assert headers["retry-after"] == str(max(1, whole_seconds(wait)))
    else:
        assert "retry-after" not in headers
