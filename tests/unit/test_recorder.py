from pathlib import Path

import orjson

from gatehouse.ledger.recorder import DatabaseSink
from gatehouse.ledger.usage import UsageRecord


class FakeDatabase:
    def __init__(self) -> None:
        self.usage: list[UsageRecord] = []

    async def insert_usage(self, records: list[UsageRecord]) -> None:
        self.usage.extend(records)


async def test_records_go_to_their_table_and_unknown_kinds_are_set_aside(tmp_path: Path) -> None:
    db = FakeDatabase()
    aside = tmp_path / "unknown-kinds.jsonl"
    sink = DatabaseSink(db, aside)  # type: ignore[arg-type]
    usage = {"kind": "usage", **UsageRecord(developer="ada@example.com").to_dict()}
    future = {"kind": "audit_block", "sha256": "ab" * 32}
    await sink([usage, future])
    assert [r.developer for r in db.usage] == ["ada@example.com"]
    assert [orjson.loads(line) for line in aside.read_bytes().splitlines()] == [future]
