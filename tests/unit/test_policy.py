import pytest

from gatehouse.errors import InvalidRequest, PermissionDenied, RateLimited
from gatehouse.policy.models import ModelPolicy
from gatehouse.policy.ratelimit import MemoryCounter, RateLimit, RateLimiter


def test_empty_model_policy_allows_everything() -> None:
    assert ModelPolicy.parse("").allows("anything")


def test_model_policy_globs() -> None:
    policy = ModelPolicy.parse("claude-sonnet-*, claude-haiku-4-5")
    assert policy.allows("claude-sonnet-4-6")
    assert policy.allows("claude-haiku-4-5")
    assert not policy.allows("claude-haiku-4-5-20251001")
    with pytest.raises(PermissionDenied, match="claude-opus-5-5") as refused:
        policy.check("claude-opus-5-5")
    assert "claude-sonnet-*" in refused.value.message
    assert refused.value.status == 403


@pytest.mark.parametrize(
    ("text", "limit"),
    [("600/min", RateLimit(600, 60)), ("20 / s", RateLimit(20, 1)), ("5/hour", RateLimit(5, 3600))],
)
def test_rate_limit_parse(text: str, limit: RateLimit) -> None:
    assert RateLimit.parse(text) == limit


@pytest.mark.parametrize("text", ["lots", "0/min", "5/fortnight"])
def test_rate_limit_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidRequest, match="rate limit"):
        RateLimit.parse(text)


async def test_rate_limiter_counts_per_developer_per_window() -> None:
    limiter = RateLimiter(RateLimit(2, 60), MemoryCounter())
    await limiter.check("ada@example.com", now=120.0)
    await limiter.check("ada@example.com", now=150.0)
    await limiter.check("bob@example.com", now=150.0)
    with pytest.raises(RateLimited) as refused:
        await limiter.check("ada@example.com", now=170.0)
    assert refused.value.headers["retry-after"] == "10"
    assert "2 requests per minute" in refused.value.message
    assert refused.value.should_retry is False
    await limiter.check("ada@example.com", now=180.0)  # a new window
