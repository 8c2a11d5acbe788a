"""The meter prices every record on its way to the spool and names its cost centre."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.ledger.cost import cost_of
from gatehouse.ledger.meter import UNKNOWN_MODEL_PRICE, CostCentres, Meter
from gatehouse.ledger.prices import load_price_table
from gatehouse.ledger.usage import UsageRecord
from gatehouse.settings import SettingsError

TABLE = load_price_table()


def record(model: str = "claude-sonnet-4-6", **kw: object) -> UsageRecord:
    values: dict[str, object] = {"input_tokens": 1000, "output_tokens": 500, "ts": 1.8e9}
    values.update(kw)
    return UsageRecord(model_requested=model, model_served=model, **values)  # type: ignore[arg-type]


def test_a_known_model_is_priced_exactly_as_the_cost_module_says() -> None:
    usage = record(cache_creation_input_tokens=2000, cache_creation_1h_tokens=2000)
    assert Meter(TABLE).price(usage) is None
    assert usage.cost_micros == cost_of(usage, TABLE).micros
    # $3/M input, $15/M output, $6/M 1-hour writes: 3000 + 7500 + 12000 micro-dollars.
    assert usage.cost_micros == 22_500


def test_inference_geo_us_is_charged_the_multiplier() -> None:
    plain, us = record(), record(inference_geo="us")
    meter = Meter(TABLE)
    meter.price(plain)
    meter.price(us)
    assert plain.cost_micros == 10_500
    assert us.cost_micros == 11_550


def test_an_unknown_model_is_unknown_not_free_and_raised_once() -> None:
    meter = Meter(TABLE)
    first, second = record("claude-mystery-9"), record("claude-mystery-9")
    event = meter.price(first)
    assert first.cost_micros is None
    assert event is not None and event.kind == UNKNOWN_MODEL_PRICE
    assert event.severity == "warning" and "claude-mystery-9" in event.subject
    assert event.detail == {"model": "claude-mystery-9", "usage_record": first.id}
    assert meter.price(second) is None  # one event per model per process, not per request
    assert second.cost_micros is None


def test_a_request_that_used_no_tokens_costs_nothing_whatever_its_model() -> None:
    refused = record("claude-mystery-9", input_tokens=0, output_tokens=0)
    assert Meter(TABLE).price(refused) is None
    assert refused.cost_micros == 0


def test_cost_centre_by_developer_then_team_then_default(tmp_path: Path) -> None:
    path = tmp_path / "centres.yaml"
    path.write_text(
        "default: CC-0000\nteams: {Payments: CC-1042}\ndevelopers: {ada@example.com: 2001}\n"
    )
    centres = CostCentres.load(path)
    assert centres.of("ADA@example.com", "payments") == "2001"
    assert centres.of("bob@example.com", "payments") == "CC-1042"
    assert centres.of("bob@example.com", "search") == "CC-0000"
    usage = record(developer="bob@example.com", team="payments")
    Meter(TABLE, centres).price(usage)
    assert usage.cost_centre == "CC-1042"
    assert CostCentres.load(None).of("ada@example.com", "payments") == ""


@pytest.mark.parametrize(
    "text", ["teams: [a, b]\n", "team: {a: b}\n", "developers: {a: {b: c}}\n", "{{{\n"]
)
def test_a_malformed_cost_centre_file_names_itself(tmp_path: Path, text: str) -> None:
    path = tmp_path / "centres.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match="cost centre file"):
        CostCentres.load(path)


def test_the_usage_object_names_geo_tier_and_speed() -> None:
    usage = UsageRecord()
    usage.apply_usage({"inference_geo": "us", "service_tier": "priority", "speed": "fast"})
    assert (usage.inference_geo, usage.service_tier, usage.speed) == ("us", "priority", "fast")
    usage.apply_usage({"inference_geo": None})  # a later delta without it changes nothing
    assert usage.inference_geo == "us"
