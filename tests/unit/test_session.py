"""The signed session cookie and the header-based same-origin check."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.identity.session import Sessions
from gatehouse.settings import Settings


@pytest.fixture
def sessions(tmp_path: Path) -> Sessions:
    return Sessions(Settings(data_dir=tmp_path, secret_key="s", public_url="https://gh.example/"))


def test_a_session_round_trips_and_expires(sessions: Sessions) -> None:
    cookie, issued = sessions.issue(
        email="ada@example.com",
        name="Ada",
        team="payments",
        roles=("finance", "developer"),
        now=100,
    )
    assert sessions.read(cookie, now=101) == issued
    assert issued.principal().roles == ("finance", "developer")
    assert sessions.read(cookie, now=100 + sessions.ttl + 1) is None


def test_a_cookie_signed_with_another_secret_or_purpose_is_refused(
    sessions: Sessions, tmp_path: Path
) -> None:
    cookie, _ = sessions.issue(email="a@example.com", name="A", team="", roles=("developer",))
    other = Sessions(Settings(data_dir=tmp_path, secret_key="other"))
    assert other.read(cookie) is None
    login = sessions.sign("login", {"e": "a@example.com", "n": "", "t": "", "r": [], "x": 1e12})
    assert sessions.read(login) is None
    assert sessions.read(cookie[:-2] + "xx") is None


def test_deprovisioned_humans_have_no_session(tmp_path: Path) -> None:
    gone = Sessions(Settings(data_dir=tmp_path, secret_key="s"), deprovisioned=lambda e: True)
    cookie, _ = gone.issue(email="a@example.com", name="A", team="", roles=("developer",))
    assert gone.read(cookie) is None


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({"sec-fetch-site": "same-origin"}, True),
        ({"sec-fetch-site": "same-site"}, False),
        ({"sec-fetch-site": "cross-site", "origin": "https://gh.example"}, False),
        ({"origin": "https://gh.example"}, True),
        ({"origin": "https://evil.example"}, False),
        ({"origin": "null"}, False),
        ({}, False),
    ],
)
def test_same_origin(sessions: Sessions, headers: dict[str, str], ok: bool) -> None:
    assert sessions.same_origin(headers) is ok
    assert sessions.secure
