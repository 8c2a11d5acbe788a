"""Finance exports of a month's usage: a plain CSV, and a FOCUS 1.2 cost-and-usage file.

Pure: the caller reads `ChargeLine` values from the database
(`gatehouse.store.reports.charge_lines`) and gets text back.

Money leaves as exact decimal strings made from integer micro-dollars
(``"0.154000"``), so a spreadsheet or a FinOps tool sums the file to the
micro-dollar of the report.  Usage whose model had no price is never written
as zero: the CSV carries it in ``unpriced_records`` with no cost, the FOCUS
file leaves it out (``BilledCost`` may not be null), and both report how many
records that was so the caller can say so.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

import orjson

from gatehouse.errors import InvalidRequest
from gatehouse.ledger.rollups import NO_VALUE, Period, ReportRow, combine, decimal_usd

FOCUS_VERSION = "1.2"


class ExportFormat(StrEnum):
    CSV = "csv"
    FOCUS = "focus"


def parse_format(value: str, name: str = "format") -> ExportFormat:
    """``csv`` or ``focus``; `InvalidRequest` naming the choices otherwise."""
    try:
        return ExportFormat(value.strip().lower())
    except ValueError:
        raise InvalidRequest(f"{name} must be csv or focus (got {value!r})") from None


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """Usage at the exports' grain: one UTC day, developer, team, repository, cost centre, model.

    Priced and unpriced records of one grain are separate lines (``priced``),
    so an export can keep unpriced usage out of its cost columns and still
    account for it.
    """

    day: date
    developer: str
    team: str
    repository: str
    cost_centre: str
    model: str
    priced: bool
    usage: ReportRow  # cost_micros is 0 on an unpriced line


@dataclass(frozen=True, slots=True)
class Export:
    """An export's text and what it adds up to."""

    format: ExportFormat
    period: str
    text: str
    rows: int
    cost_micros: int  # the sum of the file's cost column
    unpriced_records: int  # records with no price: not in any cost figure
    unpriced_tokens: int

    @property
    def media_type(self) -> str:
        return "text/csv; charset=utf-8"

    @property
    def filename(self) -> str:
        kind = "focus" if self.format is ExportFormat.FOCUS else "chargeback"
        return f"gatehouse-{kind}-{self.period}.csv"


def export(fmt: ExportFormat, period: Period, lines: Sequence[ChargeLine]) -> Export:
    """The ``fmt`` export of ``lines`` (the usage of ``period``)."""
    text, rows = (focus if fmt is ExportFormat.FOCUS else chargeback_csv)(period, lines)
    left_out = [line.usage for line in lines if not line.priced]
    return Export(
        format=fmt,
        period=period.label,
        text=text,
        rows=rows,
        cost_micros=sum(line.usage.cost_micros for line in lines if line.priced),
        unpriced_records=sum(u.records for u in left_out),
        unpriced_tokens=sum(u.tokens for u in left_out),
    )


# -- CSV -----------------------------------------------------------------------

CSV_COLUMNS = (
    "month",
    "developer",
    "team",
    "repository",
    "cost_centre",
    "model",
    "records",
    "unpriced_records",
    "input_tokens",
    "output_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "cost_usd",
)


def chargeback_csv(period: Period, lines: Iterable[ChargeLine]) -> tuple[str, int]:
    """One row per developer, team, repository, cost centre and model for the period.

    ``cost_usd`` is the known cost; ``unpriced_records`` says how many of the
    row's records it does not cover (their tokens are in the token columns).
    """
    groups: dict[tuple[str, ...], list[ReportRow]] = {}
    for line in lines:
        key: tuple[str, ...] = (
            line.developer,
            line.team,
            line.repository,
            line.cost_centre,
            line.model,
        )
        groups.setdefault(key, []).append(line.usage)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for key in sorted(groups):
        row = combine("", groups[key], developers=1)
        writer.writerow(
            (
                period.label,
                *(_cell(part) for part in key),
                row.records,
                row.unpriced,
                row.input_tokens,
                row.output_tokens,
                row.cache_write_5m_tokens,
                row.cache_write_1h_tokens,
                row.cache_read_tokens,
                decimal_usd(row.cost_micros),
            )
        )
    return out.getvalue(), len(groups)


# -- FOCUS ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FocusParties:
    """Who bills and who is billed, as the FOCUS file names them."""

    billing_account_id: str = "gatehouse"
    billing_account_name: str = "Gatehouse"
    provider: str = "Anthropic"
    publisher: str = "Anthropic"
    invoice_issuer: str = "Anthropic"
    service: str = "Claude API"


FOCUS_COLUMNS = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
    # Custom columns carry the "x_" prefix FOCUS reserves for them.
    "x_Requests",
    "x_InputTokens",
    "x_OutputTokens",
    "x_CacheWrite5mTokens",
    "x_CacheWrite1hTokens",
    "x_CacheReadTokens",
)


def focus(
    period: Period, lines: Iterable[ChargeLine], parties: FocusParties | None = None
) -> tuple[str, int]:
    """A FOCUS 1.2 file: one ``Usage`` row per priced line, cost columns summing to the total.

    What each column holds is documented in docs/chargeback.md ("Exports").
    """
    who = parties or FocusParties()
    billing_start, billing_end = _month_bounds(period)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FOCUS_COLUMNS)
    rows = 0
    for line in lines:
        if not line.priced:
            continue
        usage, cost = line.usage, decimal_usd(line.usage.cost_micros)
        model, team = _cell(line.model), _cell(line.team)
        day_start = datetime(line.day.year, line.day.month, line.day.day, tzinfo=UTC)
        tags = {
            "developer": line.developer,
            "team": line.team,
            "repository": line.repository,
            "cost-centre": line.cost_centre,
            "model": line.model,
        }
        writer.writerow(
            (
                cost,  # BilledCost
                who.billing_account_id,
                who.billing_account_name,
                "USD",  # BillingCurrency
                _iso(billing_end),
                _iso(billing_start),
                "Usage",  # ChargeCategory
                "",  # ChargeClass: null, not a correction
                f"{model or NO_VALUE}: input, output and prompt-cache tokens "
                "at the price table's per-request rates",
                "Usage-Based",  # ChargeFrequency
                _iso(day_start + timedelta(days=1)),
                _iso(day_start),
                usage.tokens,  # ConsumedQuantity
                "Tokens",  # ConsumedUnit
                cost,  # ContractedCost
                "",  # ContractedUnitPrice: null, the row blends rates (docs)
                cost,  # EffectiveCost
                who.invoice_issuer,
                cost,  # ListCost
                "",  # ListUnitPrice: null, as ContractedUnitPrice
                "Standard",  # PricingCategory
                _millions(usage.tokens),  # PricingQuantity, in PricingUnit
                "1M Tokens",  # PricingUnit
                who.provider,
                who.publisher,
                model,  # ResourceId
                model,  # ResourceName
                "Model",  # ResourceType
                "AI and Machine Learning",  # ServiceCategory
                who.service,
                "Generative AI",  # ServiceSubcategory
                model,  # SkuId
                team,  # SubAccountId
                team,  # SubAccountName
                orjson.dumps({k: v for k, v in tags.items() if v}).decode(),
                usage.records,
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_write_5m_tokens,
                usage.cache_write_1h_tokens,
                usage.cache_read_tokens,
            )
        )
        rows += 1
    return out.getvalue(), rows


def _month_bounds(period: Period) -> tuple[datetime, datetime]:
    """The calendar month ``period`` lies in: FOCUS's billing period."""
    start = period.start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, (start + timedelta(days=32)).replace(day=1)


# A cell a spreadsheet would run as a formula; the repository and the model come
# from request headers and bodies, so they are the requester's to choose.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    """``text`` made inert for spreadsheets (OWASP's CSV-injection guard: a leading ')."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _millions(tokens: int) -> str:
    """``tokens`` in millions as an exact decimal (the unit prices are per million)."""
    whole, fraction = divmod(tokens, 1_000_000)
    return f"{whole}.{fraction:06d}"
