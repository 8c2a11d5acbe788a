"""What budgets tell people: events, and Slack-compatible webhook messages.

Every alert is an `Event` (durable, in the ``events`` table) and, when a
webhook is configured (the budget's own, else ``GATEHOUSE_ALERT_WEBHOOK_URL``),
a POST of ``{"text": …, "blocks": […]}`` — Slack's incoming-webhook shape, which
Mattermost, Rocket.Chat and most chat tools also accept.  `WebhookSender` runs
in the background with a timeout and a few retries, never on a request's path.

Webhook URLs carry their secret in the path, so logs show only scheme and host
(`mask_url`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from gatehouse.events import Event
from gatehouse.ledger.budgets import HARD, Budget, BudgetException, Limit, percent, usd, utc_text
from gatehouse.ledger.guard import Alert

log = logging.getLogger("gatehouse.ledger")

BUDGET_SOFT_ALERT = "budget_soft_alert"
BUDGET_HARD_PAUSE = "budget_hard_pause"
BUDGET_EXCEPTION_GRANTED = "budget_exception_granted"
BUDGET_CHANGED = "budget_changed"


def mask_url(url: str) -> str:
    """``https://hooks.slack.com/services/T0/B0/secret`` → ``https://hooks.slack.com/…``."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "(malformed URL)"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/…"


def subject(alert: Alert) -> str:
    budget, limit = alert.budget, alert.limit
    spent = (
        f"{budget.describe()} has spent {usd(alert.spend_micros)} of its "
        f"{usd(limit.micros)} {limit.kind} budget for {limit.period} "
        f"({percent(alert.spend_micros, limit.micros)})"
    )
    if alert.level == HARD:
        return f"Budget paused: {spent}; requests are refused"
    return f"Budget alert: {spent}"


def alert_event(alert: Alert) -> Event:
    """The event every alert is recorded as, whether or not a webhook is configured."""
    budget, limit = alert.budget, alert.limit
    return _event(
        budget,
        kind=BUDGET_HARD_PAUSE if alert.level == HARD else BUDGET_SOFT_ALERT,
        subject=subject(alert),
        severity="critical" if alert.level == HARD else "warning",
        ts=alert.ts,
        detail={
            "budget_id": budget.id,
            "period": limit.period,
            "limit_kind": limit.kind,
            "spend_micros": alert.spend_micros,
            "limit_micros": limit.micros,
            "raised_micros": limit.raised_micros,
            "threshold_micros": alert.threshold_micros,
            "threshold_permille": alert.permille,
            "resumes_at": limit.ends if alert.level == HARD else None,
        },
    )


def changed_event(budget: Budget, *, removed: bool = False) -> Event:
    """``budget_changed``: a budget set or removed, with who did it."""
    verb = "removed" if removed else "set"
    daily = f", {usd(budget.daily_micros)} daily" if budget.daily_micros else ""
    return _event(
        budget,
        kind=BUDGET_CHANGED,
        subject=f"Budget {verb} for {budget.describe()}: {usd(budget.monthly_micros)} monthly"
        f"{daily} by {budget.updated_by or 'unknown'}",
        detail={
            "budget_id": budget.id,
            "removed": removed,
            "monthly_micros": budget.monthly_micros,
            "daily_micros": budget.daily_micros,
            "soft_permille": budget.soft_permille,
            "hard_permille": budget.hard_permille,
            "webhook": mask_url(budget.webhook_url) if budget.webhook_url else "",
            "by": budget.updated_by,
        },
    )


def exception_event(budget: Budget, exception: BudgetException) -> Event:
    """``budget_exception_granted``: who raised which budget, by how much, until when, why."""
    return _event(
        budget,
        kind=BUDGET_EXCEPTION_GRANTED,
        subject=f"Exception for {budget.describe()}: +{usd(exception.amount_micros)} granted by "
        f"{exception.granted_by}: {exception.reason}",
        detail={
            "budget_id": budget.id,
            "exception_id": exception.id,
            "amount_micros": exception.amount_micros,
            "until": exception.until,
            "reason": exception.reason,
            "granted_by": exception.granted_by,
        },
    )


def _event(budget: Budget, **fields: Any) -> Event:
    """An event about ``budget``, filed under its developer, team or repository."""
    scope, name = budget.scope, budget.name
    return Event(
        developer=name if scope == "developer" else "",
        team=name if scope == "team" else "",
        repository=name if scope == "repository" else "",
        **fields,
    )


def webhook_payload(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` for notifications, ``blocks`` for the body."""
    budget, limit = alert.budget, alert.limit
    paused = alert.level == HARD
    icon = ":octagonal_sign:" if paused else ":warning:"
    title = f"Budget {'paused' if paused else 'alert'}: {budget.describe()}"
    what = (
        f"Requests through Gatehouse are refused until {utc_text(limit.ends)} "
        "or until the limit is raised."
        if paused
        else f"Requests will be refused at {budget.hard_permille / 10:g}% "
        f"({usd(limit.hard_micros)})."
    )
    flag = f"--{budget.scope} {budget.name}"
    return {
        "text": f"{icon} {subject(alert)}.",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{subject(alert)}. {what}"}},
            {
                "type": "section",
                "fields": [
                    _field("Spent", usd(alert.spend_micros)),
                    _field("Limit", _limit_text(limit)),
                    _field("Period", f"{limit.period} ({limit.kind})"),
                    _field(
                        "Threshold", f"{alert.permille / 10:g}% ({usd(alert.threshold_micros)})"
                    ),
                ],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "To raise it for a while: `gatehouse budget exception "
                        f"{flag} --amount USD --until DATE --reason TEXT`",
                    }
                ],
            },
        ],
    }


def _field(name: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": f"*{name}*\n{value}"}


def _limit_text(limit: Limit) -> str:
    if not limit.raised_micros:
        return usd(limit.micros)
    return f"{usd(limit.micros)} ({usd(limit.base_micros)} + {usd(limit.raised_micros)} exceptions)"


class WebhookSender:
    """POSTs JSON to webhooks with a timeout and a few retries; never raises."""

    def __init__(self, *, timeout: float = 5.0, attempts: int = 3, backoff: float = 0.5) -> None:
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, url: str, payload: dict[str, Any]) -> bool:
        """True once the webhook answered 2xx; False after the last attempt (logged)."""
        if self._session is None:
            raise RuntimeError("WebhookSender.send before start")
        shown = mask_url(url)
        reason = ""
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            try:
                async with self._session.post(url, json=payload) as response:
                    if response.status < 300:
                        return True
                    reason = f"HTTP {response.status}"
                    if response.status < 500 and response.status != 429:
                        break  # the request itself is wrong: repeating it will not help
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
        log.warning("budget alert webhook %s failed: %s", shown, reason)
        return False
