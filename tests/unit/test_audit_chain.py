"""Hash chains, admin records from events, and the block keyring — the pure parts."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from gatehouse.audit.chain import check_chain, root_hash
from gatehouse.audit.crypto import AuditKeyError, Keyring, key_id, new_key_line, plaintext
from gatehouse.audit.records import admin_row, admin_row_for, record_hash
from gatehouse.events import Event


def chain(n: int) -> list[dict[str, Any]]:
    rows, prev = [], ""
    for seq in range(1, n + 1):
        row = admin_row("policy_changed", actor="sec@x", reason=f"r{seq}", ts=float(seq))
        row |= {"id": f"r{seq}", "seq": seq, "prev_hash": prev}
        row["hash"] = prev = record_hash(prev, row)
        rows.append(row)
    return rows


def kinds(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(p.kind, p.record_id) for p in check_chain("admin", rows, None)]


def test_an_intact_chain_has_no_problem() -> None:
    assert kinds(chain(5)) == []


def test_an_altered_record_is_named() -> None:
    rows = chain(5)
    rows[2]["reason"] = "nothing to see"
    assert kinds(rows) == [("altered", "r3")]


def test_an_altered_and_rehashed_record_breaks_the_next_link() -> None:
    rows = chain(5)
    rows[2]["reason"] = "nothing to see"
    rows[2]["hash"] = record_hash(rows[2]["prev_hash"], rows[2])
    assert kinds(rows) == [("deleted", "r4")]  # r4 follows a record that is no longer there


def test_a_deleted_record_is_a_gap() -> None:
    rows = chain(5)
    del rows[1]
    problems = check_chain("admin", rows, None)
    assert [(p.kind, p.record_id, p.detail) for p in problems] == [
        ("deleted", "r3", "records 2 are missing")
    ]


def test_a_deleted_and_renumbered_record_is_a_missing_link() -> None:
    rows = chain(5)
    del rows[1]
    for row in rows[1:]:
        row["seq"] -= 1
    assert kinds(rows) == [("deleted", "r3")]


def test_an_inserted_record_is_named() -> None:
    rows = chain(4)
    fake = admin_row("policy_changed", actor="intruder", reason="", ts=2.5)
    fake |= {"id": "fake", "prev_hash": rows[1]["hash"]}
    fake["hash"] = record_hash(fake["prev_hash"], fake)
    rows.insert(2, fake)
    for seq, row in enumerate(rows, 1):
        row["seq"] = seq  # seq is not hashed: renumbering alone changes no hash
    assert kinds(rows) == [("inserted", "fake")]


def test_a_chain_ended_by_retention_continues_from_its_last_hash() -> None:
    rows = chain(5)
    assert check_chain("admin", rows[3:], (3, rows[2]["hash"])) == []
    assert kinds(rows[3:]) != []


def test_the_root_depends_on_every_head_and_the_day_before() -> None:
    heads = {"a": [3, "h"], "b": [1, "g"]}
    root = root_hash("", "2026-11-27", heads)
    assert root != root_hash("", "2026-11-27", {"a": [3, "h"]})
    assert root != root_hash("x", "2026-11-27", heads)
    assert root == root_hash("", "2026-11-27", dict(reversed(heads.items())))


def test_administrative_events_become_admin_records_with_who_and_why() -> None:
    event = Event(
        kind="policy_changed",
        subject="policy v2 by sec@x",
        detail={"author": "sec@x", "reason": "pilot", "changes": ["mode"]},
    )
    row = admin_row_for(event)
    assert row is not None
    assert (row["kind"], row["chain"], row["action"]) == ("admin", "admin", "policy_changed")
    assert (row["actor"], row["reason"]) == ("sec@x", "pilot")
    assert row["id"] == f"ev_{event.id}"
    assert admin_row_for(Event(kind="unknown_model_price", subject="x")) is None
    scim = admin_row_for(Event(kind="user_deprovisioned", subject="x", developer="a@b"))
    assert scim is not None and scim["actor"] == "scim"


def keyring_file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "audit.keys"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_blocks_round_trip_and_old_keys_still_decrypt(tmp_path: Path) -> None:
    old, new = new_key_line(), new_key_line()
    before = Keyring.load(keyring_file(tmp_path, old))
    kid, blob = before.encrypt("d1", b'{"text":"hello secret world"}')
    assert kid == key_id(base64.b64decode(old))
    assert b"secret" not in blob
    rotated = Keyring.load(keyring_file(tmp_path, "# rotated", new, "", old))
    assert rotated.current == key_id(base64.b64decode(new))
    assert plaintext("d1", kid, blob, rotated) == b'{"text":"hello secret world"}'
    assert rotated.encrypt("d1", b"x")[0] == rotated.current


def test_a_moved_or_altered_ciphertext_does_not_decrypt(tmp_path: Path) -> None:
    keyring = Keyring.load(keyring_file(tmp_path, new_key_line()))
    kid, blob = keyring.encrypt("d1", b"content")
    with pytest.raises(AuditKeyError, match="does not decrypt"):
        keyring.decrypt("d2", kid, blob)
    with pytest.raises(AuditKeyError, match="does not decrypt"):
        keyring.decrypt("d1", kid, blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(AuditKeyError, match="not in the keyring"):
        keyring.decrypt("d1", "0" * 16, blob)
    with pytest.raises(AuditKeyError, match="no audit key file"):
        plaintext("d1", kid, blob, None)


def test_a_bad_keyring_file_is_refused_without_quoting_it(tmp_path: Path) -> None:
    with pytest.raises(AuditKeyError, match="line 1") as info:
        Keyring.load(keyring_file(tmp_path, "not-base64-!!!"))
    assert "not-base64" not in str(info.value)
    with pytest.raises(AuditKeyError, match="32 bytes"):
        Keyring.load(keyring_file(tmp_path, base64.b64encode(b"short").decode()))
    with pytest.raises(AuditKeyError, match="no key"):
        Keyring.load(keyring_file(tmp_path, "# empty"))
    with pytest.raises(AuditKeyError, match="cannot read"):
        Keyring.load(tmp_path / "missing")
