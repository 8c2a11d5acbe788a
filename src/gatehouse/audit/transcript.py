"""A session's transcript rebuilt from the audit store, and rendered as Markdown, JSON or HTML.

Claude Code resends the whole conversation every turn; the store keeps each
block once and each request as its base record's prefix plus a tail
(``audit_records.base_id``/``base_len``/``tail``).  `rebuild` reverses that:
it resolves every request's block list, then shows per turn only what was new
to the conversation — the developer's prompt and the tool results sent back —
and the model's answer (text, thinking, tool calls), with the guardrail
verdict, the policy decision, model, cost and timing of the request inline.
Blocks are decrypted through the keyring when the store encrypts them.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from gatehouse.audit.crypto import AuditKeyError, Keyring, plaintext
from gatehouse.errors import NotFound
from gatehouse.store.db import Database

FORMATS = ("md", "json", "html")
_CHUNK = 500
_ASSISTANT_KINDS = frozenset({"tool_use", "server_tool_use", "thinking", "redacted_thinking"})
_RECORD_COLUMNS = (
    "id, kind, ts, session_id, chain, seq, developer, team, repository, model, endpoint, status, "
    "error_type, usage_id, cost_micros, ttfb_ms, duration_ms, params, headers, base_id, "
    "base_len, tail, response, guard, findings, decision"
)


@dataclass(slots=True)
class Entry:
    """One block as the transcript shows it."""

    role: str  # user, assistant, system, tools
    kind: str
    path: str
    digest: str
    value: Any = None  # the block as sent; None when it could not be read
    note: str = ""  # why ``value`` is missing

    def to_json(self) -> dict[str, Any]:
        out = {"role": self.role, "kind": self.kind, "path": self.path, "digest": self.digest}
        out["block"] = self.value
        if self.note:
            out["note"] = self.note
        return out


@dataclass(slots=True)
class Turn:
    record_id: str
    seq: int
    ts: float
    model: str
    endpoint: str
    status: int
    error_type: str
    cost_micros: int | None
    ttfb_ms: float | None
    duration_ms: float | None
    guard: str
    findings: list[dict[str, Any]]
    decision: str
    params: dict[str, Any]
    usage: dict[str, int] = field(default_factory=dict)
    context: list[Entry] = field(default_factory=list)  # system prompt and tools, when new
    prompt: list[Entry] = field(default_factory=list)
    response: list[Entry] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "seq": self.seq,
            "ts": self.ts,
            "time": _iso(self.ts),
            "model": self.model,
            "endpoint": self.endpoint,
            "status": self.status,
            "error_type": self.error_type,
            "cost_micros": self.cost_micros,
            "ttfb_ms": self.ttfb_ms,
            "duration_ms": self.duration_ms,
            "guard": self.guard,
            "findings": self.findings,
            "decision": self.decision,
            "params": self.params,
            "usage": self.usage,
            "context": [e.to_json() for e in self.context],
            "prompt": [e.to_json() for e in self.prompt],
            "response": [e.to_json() for e in self.response],
        }


@dataclass(slots=True)
class Transcript:
    session: str
    developer: str
    team: str
    repository: str
    client: str
    turns: list[Turn]

    @property
    def cost_micros(self) -> int:
        return sum(t.cost_micros or 0 for t in self.turns)

    def turn(self, record_id: str) -> Turn | None:
        return next((t for t in self.turns if t.record_id == record_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "developer": self.developer,
            "team": self.team,
            "repository": self.repository,
            "client": self.client,
            "started": _iso(self.turns[0].ts) if self.turns else None,
            "ended": _iso(self.turns[-1].ts) if self.turns else None,
            "requests": len(self.turns),
            "cost_micros": self.cost_micros,
            "verdicts": dict(Counter(t.guard or "none" for t in self.turns)),
            "turns": [t.to_json() for t in self.turns],
        }


# -- rebuilding ---------------------------------------------------------------------


async def rebuild(db: Database, session: str, keyring: Keyring | None = None) -> Transcript:
    """The transcript of ``session`` (a Claude Code session id or a chain such as ``dev:EMAIL``)."""
    records = await _records(db, "chain = :key AND kind = 'request' ORDER BY seq", session)
    if not records:
        records = await _records(
            db, "session_id = :key AND kind = 'request' ORDER BY ts, seq", session
        )
    if not records:
        raise NotFound(f"no audited session {session!r}: check the id (`gatehouse audit search`)")
    lists = await _request_lists(db, records)
    digests = {d for r in records for _, d in (*lists[r["id"]], *_pairs(r["response"]))}
    values = await _blocks(db, digests, keyring)
    usage = await _usage(db, [r["usage_id"] for r in records if r["usage_id"]])
    turns: list[Turn] = []
    echoes: Counter[str] = Counter()  # answers not yet sent back in a later request
    seen_context: set[str] = set()
    for record in records:
        turn = _turn(record, usage.get(record["usage_id"] or "", {}))
        full = lists[record["id"]]
        base_len = int(record["base_len"] or 0) if record["base_id"] else 0
        fresh = full if not turns else full[base_len:]
        for path, digest in fresh:
            if path.startswith(("system", "tools")):
                if digest not in seen_context:
                    seen_context.add(digest)
                    role = "system" if path.startswith("system") else "tools"
                    turn.context.append(_entry(role, path, digest, values))
            elif echoes[digest] > 0:
                echoes[digest] -= 1
            else:
                turn.prompt.append(_entry("", path, digest, values))
        for path, digest in _pairs(record["response"]):
            turn.response.append(_entry("assistant", path, digest, values))
            echoes[digest] += 1
        turns.append(turn)
    first = records[0]
    headers = _json(first["headers"], {})
    return Transcript(
        session=first["chain"] or session,
        developer=first["developer"] or "",
        team=first["team"] or "",
        repository=first["repository"] or "",
        client=str(headers.get("user-agent", "")),
        turns=turns,
    )


async def _records(db: Database, where: str, key: str) -> list[sa.RowMapping]:
    query = sa.text(f"SELECT {_RECORD_COLUMNS} FROM audit_records WHERE {where}")  # noqa: S608 -- fixed text
    return await db.fetch_all(query.bindparams(key=key), "read the audit records")


async def _request_lists(
    db: Database, records: Sequence[sa.RowMapping]
) -> dict[str, list[tuple[str, str]]]:
    """Every record's full request block list: its base's first base_len entries + its tail."""
    known: dict[str, sa.RowMapping] = {r["id"]: r for r in records}
    missing = {r["base_id"] for r in records if r["base_id"]} - known.keys()
    while missing:  # bases in other chains (a forked or resumed session)
        query = sa.text(
            f"SELECT {_RECORD_COLUMNS} FROM audit_records WHERE id IN :ids"  # noqa: S608
        ).bindparams(sa.bindparam("ids", expanding=True))
        found = await db.fetch_all(query.bindparams(ids=sorted(missing)), "read base records")
        known.update({r["id"]: r for r in found})
        missing = {r["base_id"] for r in found if r["base_id"]} - known.keys()
    lists: dict[str, list[tuple[str, str]]] = {}
    for record in records:
        walk = [record]
        while walk[-1]["id"] not in lists:
            base = walk[-1]["base_id"]
            if not base or base not in known or base in (w["id"] for w in walk):
                break
            walk.append(known[base])
        for item in reversed(walk):
            if item["id"] in lists:
                continue
            base = item["base_id"]
            prefix = lists.get(base, [])[: int(item["base_len"] or 0)] if base else []
            lists[item["id"]] = prefix + _pairs(item["tail"])
    return lists


async def _blocks(
    db: Database, digests: Iterable[str], keyring: Keyring | None
) -> dict[str, tuple[str, Any, str]]:
    """digest → (kind, parsed block or None, note)."""
    out: dict[str, tuple[str, Any, str]] = {}
    wanted = sorted(digests)
    query = sa.text(
        "SELECT digest, kind, content, key_id FROM audit_blocks WHERE digest IN :digests"
    ).bindparams(sa.bindparam("digests", expanding=True))
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        for row in await db.fetch_all(query.bindparams(digests=chunk), "read audit blocks"):
            out[row["digest"]] = _open(row, keyring)
    return out


def _open(row: sa.RowMapping, keyring: Keyring | None) -> tuple[str, Any, str]:
    kind = row["kind"] or ""
    try:
        content = plaintext(row["digest"], row["key_id"] or "", row["content"] or b"", keyring)
    except AuditKeyError as exc:
        return kind, None, exc.message
    try:
        return kind, orjson.loads(content), ""
    except orjson.JSONDecodeError:
        return kind, None, "the stored block is not valid JSON"


async def _usage(db: Database, ids: list[str]) -> dict[str, dict[str, int]]:
    if not ids:
        return {}
    columns = (
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    )
    query = sa.text(
        f"SELECT id, {', '.join(columns)} FROM usage_records WHERE id IN :ids"  # noqa: S608
    ).bindparams(sa.bindparam("ids", expanding=True))
    out: dict[str, dict[str, int]] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = await db.fetch_all(query.bindparams(ids=ids[start : start + _CHUNK]), "read usage")
        out.update({row["id"]: {c: int(row[c] or 0) for c in columns} for row in rows})
    return out


def _turn(record: sa.RowMapping, usage: dict[str, int]) -> Turn:
    return Turn(
        record_id=record["id"],
        seq=int(record["seq"] or 0),
        ts=float(record["ts"]),
        model=record["model"] or "",
        endpoint=record["endpoint"] or "",
        status=int(record["status"] or 0),
        error_type=record["error_type"] or "",
        cost_micros=record["cost_micros"],
        ttfb_ms=record["ttfb_ms"],
        duration_ms=record["duration_ms"],
        guard=record["guard"] or "",
        findings=[f for f in _json(record["findings"], []) if isinstance(f, dict)],
        decision=record["decision"] or "",
        params=_json(record["params"], {}),
        usage=usage,
    )


def _entry(role: str, path: str, digest: str, values: dict[str, tuple[str, Any, str]]) -> Entry:
    kind, value, note = values.get(digest, ("", None, "the block is no longer stored"))
    if not role:
        role = "assistant" if kind in _ASSISTANT_KINDS else "user"
    return Entry(role, kind, path, digest, value, note)


def _pairs(text: Any) -> list[tuple[str, str]]:
    return [(str(p), str(d)) for p, d in _json(text, [])]


def _json(text: Any, default: Any) -> Any:
    if not text:
        return default
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return default
    return value if isinstance(value, type(default)) else default


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


# -- rendering ----------------------------------------------------------------------


def render(transcript: Transcript, fmt: str, *, highlight: str = "") -> str:
    """The transcript as ``md``, ``json`` or ``html``; ``highlight`` marks one record's turn."""
    if fmt == "json":
        return orjson.dumps(transcript.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "md":
        return _markdown(transcript, highlight)
    if fmt == "html":
        return _html(transcript, highlight)
    raise ValueError(f"unknown format {fmt!r}")


def money(micros: int | None) -> str:
    return "unpriced" if micros is None else f"${micros / 1_000_000:,.4f}"


def turn_facts(turn: Turn) -> list[str]:
    """The request's facts as short labels, in the order a reader scans them."""
    facts = [_iso(turn.ts), turn.model or "model?", f"status {turn.status}"]
    if turn.error_type:
        facts[-1] += f" {turn.error_type}"
    facts.append(money(turn.cost_micros))
    if turn.usage:
        u = turn.usage
        facts.append(
            f"{u['input_tokens']:,} in / {u['output_tokens']:,} out / "
            f"{u['cache_read_input_tokens']:,} cache read"
        )
    if turn.ttfb_ms is not None:
        facts.append(f"ttfb {turn.ttfb_ms:,.0f} ms")
    if turn.duration_ms is not None:
        facts.append(f"{turn.duration_ms / 1000:,.2f} s")
    facts.append(f"guardrails: {turn.guard or 'not screened'}")
    facts.append(f"policy: {turn.decision or 'not recorded'}")
    return facts


def finding_text(finding: Mapping[str, Any]) -> str:
    where = finding.get("path") or finding.get("block") or ""
    excerpt = finding.get("excerpt") or finding.get("masked") or ""
    return (
        f"{finding.get('detector', '?')}/{finding.get('rule', '?')} → "
        f"{finding.get('action', '?')}"
        + (f" at {where}" if where else "")
        + (f" ({excerpt})" if excerpt else "")
    )


def entry_parts(entry: Entry) -> tuple[str, str]:
    """(a one-line heading, the body text) of an entry, for any renderer."""
    v = entry.value if isinstance(entry.value, dict) else {}
    if entry.value is None:
        return f"{entry.kind or 'block'} (unreadable: {entry.note})", ""
    if entry.kind == "text":
        return "", str(v.get("text", ""))
    if entry.kind in ("tool_use", "server_tool_use"):
        body = orjson.dumps(v.get("input"), option=orjson.OPT_INDENT_2).decode()
        return f"tool call {v.get('name', '?')} ({v.get('id', '')})", body
    if entry.kind == "tool_result":
        content = v.get("content")
        if isinstance(content, list):
            content = "\n".join(
                str(p.get("text", f"[{p.get('type', 'part')}]"))
                for p in content
                if isinstance(p, dict)
            )
        error = " — error" if v.get("is_error") else ""
        return f"tool result for {v.get('tool_use_id', '?')}{error}", str(content or "")
    if entry.kind == "thinking":
        return "thinking", str(v.get("thinking", ""))
    if entry.kind == "tool":
        return f"tool {v.get('name', '?')}", str(v.get("description", ""))
    return entry.kind or "block", orjson.dumps(entry.value, option=orjson.OPT_INDENT_2).decode()


def _fence(body: str) -> str:
    ticks = "```"
    while ticks in body:
        ticks += "`"
    return f"{ticks}\n{body}\n{ticks}"


def _markdown(t: Transcript, highlight: str) -> str:
    lines = [
        f"# Session {t.session}",
        "",
        f"- developer: {t.developer or '?'} (team {t.team or '?'})",
        f"- repository: {t.repository or 'none'}",
        f"- client: {t.client or '?'}",
        f"- requests: {len(t.turns)}, cost {money(t.cost_micros)}",
        "",
    ]
    for i, turn in enumerate(t.turns, 1):
        mark = " ◀ investigated" if turn.record_id == highlight else ""
        lines += [
            f"## Turn {i} · {turn.record_id}{mark}",
            "",
            "*" + " · ".join(turn_facts(turn)) + "*",
            "",
        ]
        lines += [f"- finding: {finding_text(f)}" for f in turn.findings]
        tools = [e for e in turn.context if e.role == "tools"]
        systems = [e for e in turn.context if e.role == "system"]
        if systems:
            size = sum(len(entry_parts(e)[1]) for e in systems)
            lines.append(f"- system prompt: {len(systems)} block(s), {size:,} characters")
        if tools:
            names = ", ".join(entry_parts(e)[0].removeprefix("tool ") for e in tools)
            lines.append(f"- tools offered: {names}")
        lines.append("")
        for entries in (turn.prompt, turn.response):
            for entry in entries:
                heading, body = entry_parts(entry)
                who = "Claude" if entry.role == "assistant" else "Developer"
                lines.append(f"**{who}**" + (f" — {heading}" if heading else "") + ":")
                if body:
                    lines += ["", _fence(body) if entry.kind != "text" else _quote(body)]
                lines.append("")
    return "\n".join(lines) + "\n"


def _quote(body: str) -> str:
    return "\n".join("> " + line for line in body.splitlines()) or ">"


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#1d1d1f}
header dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
section.turn{border:1px solid #ccd;border-radius:6px;margin:1.2em 0;padding:.6em 1em}
section.hl{border:2px solid #c60;background:#fff8ee}
.facts{color:#555;font-size:12px}.facts span{margin-right:.8em}
.b{display:inline-block;padding:0 .5em;border-radius:3px;font-weight:600}
.clean{background:#dfd}.flagged,.redacted{background:#ffd}.blocked,.error{background:#fcc}
.denied{background:#fcc}.observed{background:#ffd}
.user{border-left:3px solid #36c;padding-left:.6em}
.assistant{border-left:3px solid #999;padding-left:.6em}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f6f8;padding:.5em;margin:.2em 0}
"""


def _html(t: Transcript, highlight: str) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>Session {e(t.session)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>Session {e(t.session)}</h1><dl>",
    ]
    for name, value in (
        ("developer", f"{t.developer} (team {t.team or '?'})"),
        ("repository", t.repository or "none"),
        ("client", t.client or "?"),
        ("requests", f"{len(t.turns)}, cost {money(t.cost_micros)}"),
    ):
        parts.append(f"<dt>{e(name)}</dt><dd>{e(value)}</dd>")
    parts.append("</dl></header>")
    for i, turn in enumerate(t.turns, 1):
        cls = "turn hl" if turn.record_id == highlight else "turn"
        parts.append(f"<section class='{cls}' id='{e(turn.record_id)}'>")
        parts.append(f"<h2>Turn {i} <small>{e(turn.record_id)}</small></h2><div class=facts>")
        facts = turn_facts(turn)
        parts += [f"<span>{e(f)}</span>" for f in facts[:-2]]
        guard, decision = turn.guard or "none", turn.decision.split(":", 1)[0] or "none"
        parts.append(f"<span class='b {e(guard)}'>{e(facts[-2])}</span>")
        parts.append(f"<span class='b {e(decision)}'>{e(facts[-1])}</span></div>")
        if turn.findings:
            items = "".join(f"<li>{e(finding_text(f))}</li>" for f in turn.findings)
            parts.append(f"<ul class=findings>{items}</ul>")
        for entry in turn.context:
            heading, body = entry_parts(entry)
            summary = heading or f"{entry.role} ({len(body):,} characters)"
            parts.append(f"<details><summary>{e(summary)}</summary><pre>{e(body)}</pre></details>")
        for entry in (*turn.prompt, *turn.response):
            heading, body = entry_parts(entry)
            who = "Claude" if entry.role == "assistant" else "Developer"
            title = f"{who}" + (f" — {heading}" if heading else "")
            parts.append(f"<div class={e(entry.role)}><b>{e(title)}</b><pre>{e(body)}</pre></div>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "".join(parts)
