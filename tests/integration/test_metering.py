"""Every usage record reaches the ledger priced, with its cost centre; unpriced models raise."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gatehouse.ledger.cost import cost_of
from gatehouse.ledger.meter import UNKNOWN_MODEL_PRICE
from gatehouse.ledger.prices import load_price_table
from gatehouse.settings import Settings
from tests.conftest import running_gateway

PRICE_FILE = """
models:
  claude-house-1:
    prices:
      - {effective_from: 2020-01-01, input: "1", output: "2", cache_write_5m: "1.25",
         cache_write_1h: "2", cache_read: "0.1"}
"""


def body(model: str, stream: bool = True) -> dict[str, object]:
    return {
        "model": model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "price me " * 50}],
        "stream": stream,
    }


async def test_records_carry_cost_and_cost_centre(settings: Settings, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICE_FILE)
    centres = tmp_path / "centres.yaml"
    centres.write_text("default: CC-0\nteams: {payments: CC-1042}\n")
    settings = dataclasses.replace(settings, price_file=str(prices), cost_centres_file=str(centres))
    async with running_gateway(settings) as gateway:
        key = await gateway.key(team="payments")
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        for model, stream in (("claude-sonnet-4-6", True), ("claude-house-1", False)):
            response = await gateway.client.post(
                "/v1/messages", json=body(model, stream), headers=headers
            )
            assert response.status_code == 200, response.text
        sonnet, house = await gateway.usage(2)
    table = load_price_table(prices)
    for record in (sonnet, house):
        assert record.output_tokens > 0
        assert record.cost_micros is not None and record.cost_micros > 0
        assert record.cost_micros == cost_of(record, table).micros
        assert record.cost_centre == "CC-1042"
    # The operator's table prices its own model; the packaged one does not know it.
    assert cost_of(house, load_price_table()).micros is None


async def test_an_unpriced_model_is_recorded_as_unknown_and_raised_once(
    settings: Settings,
) -> None:
    async with running_gateway(settings) as gateway:
        key = await gateway.key()
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        for _ in range(2):
            response = await gateway.client.post(
                "/v1/messages", json=body("claude-mystery-9"), headers=headers
            )
            assert response.status_code == 200
        records = await gateway.usage(2)
        events = await gateway.db.query_events(kind=UNKNOWN_MODEL_PRICE)
    assert [r.cost_micros for r in records] == [None, None]
    assert [r.output_tokens > 0 for r in records] == [True, True]
    [event] = events
    assert event.detail["model"] == "claude-mystery-9"
    assert event.developer == "dev@example.com"
    assert event.detail["usage_record"] == records[0].id
