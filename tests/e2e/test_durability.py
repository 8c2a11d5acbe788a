"""Nothing acknowledged is lost: kill -9 the gateway mid-traffic, restart, count records."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import GatewayProcess

pytestmark = pytest.mark.e2e


def _hammer(gw: GatewayProcess, key: str, completed: list[str], stop: threading.Event) -> None:
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "durability " + "x" * 2000}],
    }
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        while not stop.is_set():
            session = str(uuid.uuid4())
            headers = {"x-api-key": key, "x-claude-code-session-id": session}
            try:
                with client.stream("POST", "/v1/messages", json=body, headers=headers) as r:
                    data = b"".join(r.iter_bytes())
            except httpx.HTTPError:
                continue  # the gateway died under us: this one was never acknowledged
            if r.status_code == 200 and b"event: message_stop" in data:
                completed.append(session)


def test_usage_survives_kill_9(gateway_process: GatewayProcess) -> None:
    key = gateway_process.new_key()
    completed: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_hammer, args=(gateway_process, key, completed, stop))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(completed) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    gateway_process.kill()  # with requests in flight
    stop.set()
    for t in threads:
        t.join(timeout=15)
    assert len(completed) >= 50, "too little traffic completed before the kill to prove anything"

    gateway_process.start()  # replays the spool into the database
    wanted = set(completed)
    deadline = time.monotonic() + 20
    while True:
        recorded = {str(r["session_id"]) for r in gateway_process.usage() if r["status"] == 200}
        if wanted <= recorded or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    missing = wanted - recorded
    assert not missing, f"{len(missing)} of {len(wanted)} acknowledged requests lost"
    # The audit trail is spooled with the usage record: every acknowledged exchange,
    # prompt and answer, is there too.
    database = Path(gateway_process.env["GATEHOUSE_DATA_DIR"]) / "gatehouse.db"
    with contextlib.closing(sqlite3.connect(database)) as conn:
        rows = conn.execute("SELECT session_id, response FROM audit_records").fetchall()
    audited = {session for session, response in rows if response != "[]"}
    lost = wanted - audited
    assert not lost, f"{len(lost)} of {len(wanted)} acknowledged requests missing from the audit"
