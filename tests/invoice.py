"""The hand-computed invoice of tests/fixtures/invoice.yaml, as priced usage records.

Shared by the chargeback tests and ``bench/rollup.py``: the records are priced
by the gateway's own `Meter`, exactly as a request's record is before it is
spooled, and each carries the figure worked out by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from gatehouse.ledger.meter import Meter
from gatehouse.ledger.prices import load_price_table
from gatehouse.ledger.usage import UsageRecord

INVOICE = Path(__file__).parent / "fixtures" / "invoice.yaml"


@dataclass(frozen=True)
class Invoice:
    month: str
    total_micros: int
    records: list[UsageRecord]
    expected: list[int | None]  # by hand, per record; None: no price


def load_invoice(path: Path = INVOICE) -> Invoice:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    meter = Meter(load_price_table())
    records = []
    for n, item in enumerate(data["usage"]):
        record = _record(n, item)
        meter.price(record)
        records.append(record)
    invoice = Invoice(
        month=data["month"],
        total_micros=data["total_micros"],
        records=records,
        expected=[item["expected_micros"] for item in data["usage"]],
    )
    assert len(records) == data["records"], "the fixture's record count is stale"
    return invoice


def _record(n: int, item: dict[str, Any]) -> UsageRecord:
    five, hour = item.get("cache_5m", 0), item.get("cache_1h", 0)
    return UsageRecord(
        id=f"invoice-{n:02d}",
        ts=datetime.fromisoformat(item["at"]).replace(tzinfo=UTC).timestamp(),
        developer=item["developer"],
        team=item["team"],
        repository=item["repository"],
        session_id=f"session-{item['developer']}",
        client="claude-code",
        model_requested=item.get("requested", item["model"]),
        model_served=item["model"],
        input_tokens=item.get("input", 0),
        output_tokens=item.get("output", 0),
        cache_creation_input_tokens=item.get("cache_write", five + hour),
        cache_creation_5m_tokens=five,
        cache_creation_1h_tokens=hour,
        cache_read_input_tokens=item.get("cache_read", 0),
        inference_geo=item.get("inference_geo", ""),
        status=200,
    )
