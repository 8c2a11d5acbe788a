"""Full-text search over the audit trail's blocks, with filters.

A query is what a person types: words, ``"quoted phrases"``, ``word*`` for a
prefix, ``-word`` (or ``NOT word``) to exclude and ``OR`` between
alternatives; everything else is text to find.  `parse_query` reads it into a
`SearchQuery` that is built only from letters and digits, so the FTS5 query
(SQLite) or tsquery (PostgreSQL) made from it can be neither a syntax error
nor an injection: ``"``, ``*``, ``NEAR(``, ``col:`` or ``-`` in user text are
punctuation between words, never operators of the engine.

A hit is a block whose text matches, in the record where it first entered a
session (``audit_block_sessions``); the filters (developer, team,
repository, session, model, time, guardrail verdict, policy decision) read
that record.  PostgreSQL returns the newest hits.  SQLite returns the first
hits in index order (the FTS rowid, which derives from the block digest:
stable, not by time), so that it can stop at the limit, and shows them newest
first; a narrow filter (`search_sql`) keeps that fast when the words match
hundreds of thousands of blocks.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from gatehouse.audit.append import rowid_prefix, text_rowid
from gatehouse.errors import InvalidRequest
from gatehouse.store.db import Database

MAX_LIMIT = 1000
MAX_QUERY_CHARS = 1000
NARROW_RECORDS = 1000  # gather the blocks of at most this many records (or more: `_narrow`)
MARK_START = "\x02"  # the engine wraps each match in these; renderers choose a style
MARK_END = "\x03"
GUARD_VERDICTS = ("clean", "flagged", "redacted", "blocked", "error", "skipped")

_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r'-?"[^"]*(?:"|$)|\S+')
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class Term:
    """Words that must appear next to each other (one word is a phrase of one)."""

    words: tuple[str, ...]
    prefix: bool = False  # the last word is a prefix


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Any one of ``any_of`` (each a list of terms that must all match), minus ``exclude``."""

    any_of: tuple[tuple[Term, ...], ...]
    exclude: tuple[Term, ...] = ()

    def fts5(self) -> str:
        """The SQLite FTS5 MATCH expression: every term a quoted string."""
        clauses = [" AND ".join(_fts5_term(t) for t in clause) for clause in self.any_of]
        text = " OR ".join(f"({c})" for c in clauses)
        if self.exclude:
            text = f"({text}) NOT ({' OR '.join(_fts5_term(t) for t in self.exclude)})"
        return text

    def tsquery(self) -> str:
        """A PostgreSQL ``to_tsquery('simple', …)`` text: quoted lexemes, ``<->`` for phrases."""
        clauses = [" & ".join(_ts_term(t) for t in clause) for clause in self.any_of]
        text = " | ".join(f"({c})" for c in clauses)
        if self.exclude:
            text = f"({text}) & !({' | '.join(_ts_term(t) for t in self.exclude)})"
        return text


def _fts5_term(term: Term) -> str:
    quoted = '"' + " ".join(term.words).replace('"', '""') + '"'
    return quoted + ("*" if term.prefix else "")


def _ts_term(term: Term) -> str:
    lexemes = [f"'{word.lower()}'" for word in term.words]  # letters and digits only
    if term.prefix:
        lexemes[-1] += ":*"
    return lexemes[0] if len(lexemes) == 1 else "(" + " <-> ".join(lexemes) + ")"


def parse_query(text: str) -> SearchQuery:
    """Read what a person typed; `InvalidRequest` only when there is nothing to look for."""
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidRequest(f"the search is {len(text)} characters long; keep it under 1000")
    groups: list[list[Term]] = [[]]
    exclude: list[Term] = []
    negate = False
    for piece in _TOKEN.findall(text):
        if piece == "OR":
            if groups[-1]:
                groups.append([])
            continue
        if piece in ("AND", "NOT"):
            negate = negate or piece == "NOT"
            continue
        if piece.startswith("-") and len(piece) > 1:
            negate, piece = True, piece[1:]
        term = _term(piece)
        if term is not None:
            (exclude if negate else groups[-1]).append(term)
        negate = False
    any_of = tuple(tuple(group) for group in groups if group)
    if not any_of:
        raise InvalidRequest(
            f"nothing to search for in {text!r}: give at least one word or "
            '"quoted phrase" to find (a -word only excludes)'
        )
    return SearchQuery(any_of, tuple(exclude))


def _term(token: str) -> Term | None:
    quoted = token.startswith('"')
    body = token.strip('"') if quoted else token
    words = tuple(_WORD.findall(body))
    if not words:
        return None
    prefix = not quoted and body.endswith("*") and bool(_WORD.search(body[-2:-1] or ""))
    return Term(words, prefix)


def parse_when(text: str, *, name: str = "--since", now: float | None = None) -> float:
    """``24h`` / ``7d`` ago, an ISO 8601 date or time (UTC if no zone), or epoch seconds."""
    value = text.strip()
    duration = _DURATION.match(value.lower())
    if duration:
        ago = int(duration.group(1)) * _UNITS[duration.group(2)]
        return (time.time() if now is None else now) - ago
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"{name} {text!r}: give a duration such as 24h or 7d, or a date such as 2026-11-02"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class Filters:
    """Which records' blocks to search; every field left empty matches everything."""

    developer: str = ""
    team: str = ""
    repository: str = ""
    session: str = ""
    model: str = ""
    guard: str = ""  # clean, flagged, redacted, blocked, error, skipped
    decision: str = ""  # allowed, denied, observed, or one exact "denied:<reason>"
    since: float | None = None
    until: float | None = None

    def __post_init__(self) -> None:
        if self.guard and self.guard not in GUARD_VERDICTS:
            raise InvalidRequest(
                f"guardrail verdict {self.guard!r}: choose from {', '.join(GUARD_VERDICTS)}"
            )

    def clauses(self, r: str = "r") -> tuple[list[str], dict[str, Any]]:
        """SQL conditions over ``r`` (audit_records, or the alias given) and ``s``
        (audit_block_sessions)."""
        where: list[str] = []
        params: dict[str, Any] = {}
        for column in ("developer", "team", "repository", "model", "guard"):
            value = getattr(self, column)
            if value:
                where.append(f"{r}.{column} = :{column}")
                params[column] = value
        if self.session:
            where.append("s.chain = :session")
            params["session"] = self.session
        if self.decision:
            if ":" in self.decision:
                where.append(f"{r}.decision = :decision")
                params["decision"] = self.decision
            else:
                where.append(f"({r}.decision = :decision OR {r}.decision LIKE :decision_prefix)")
                params["decision"] = self.decision
                params["decision_prefix"] = self.decision.replace("%", "").replace("_", "") + ":%"
        if self.since is not None:
            where.append(f"{r}.ts >= :since")
            params["since"] = self.since
        if self.until is not None:
            where.append(f"{r}.ts < :until")
            params["until"] = self.until
        return where, params


@dataclass(frozen=True, slots=True)
class Hit:
    digest: str
    kind: str
    session: str
    record_id: str
    ts: float
    developer: str
    team: str
    repository: str
    model: str
    guard: str
    decision: str
    snippet: str  # the matches between MARK_START and MARK_END

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "kind": self.kind,
            "session": self.session,
            "record_id": self.record_id,
            "ts": self.ts,
            "time": datetime.fromtimestamp(self.ts, tz=UTC).isoformat(timespec="seconds"),
            "developer": self.developer,
            "team": self.team,
            "repository": self.repository,
            "model": self.model,
            "guard": self.guard,
            "decision": self.decision,
            "snippet": self.snippet.replace(MARK_START, "«").replace(MARK_END, "»"),
        }


@dataclass(slots=True)
class SearchResult:
    query: str
    hits: list[Hit] = field(default_factory=list)
    more: bool = False  # at least one more hit beyond the limit
    elapsed_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "hits": [hit.to_json() for hit in self.hits],
            "more": self.more,
            "elapsed_ms": round(self.elapsed_ms, 2),
        }


_COLUMNS = (
    "s.digest AS digest, b.kind AS kind, s.chain AS session, s.record_id AS record_id, "
    "r.ts AS ts, r.developer AS developer, r.team AS team, r.repository AS repository, "
    "r.model AS model, r.guard AS guard, r.decision AS decision"
)


# SQLite: the FTS rowid is the block's (`append.text_rowid`); its first 15 hex digits
# find the block's links through their primary key.
_PREFIX = rowid_prefix("{0}")
_LINKS = f"s.digest >= {_PREFIX} AND s.digest < {_PREFIX} || 'g'"
_SNIPPET = "snippet(audit_text, 0, char(2), char(3), '…', 24)"


def search_sql(dialect: str, filters: Filters, *, narrow: bool = False) -> str:
    """The search statement for ``dialect``: fixed text, every value a bound parameter.

    SQLite walks the FTS matches in rowid order and stops at the limit; the
    filters are checked per link in a correlated subquery (as a join condition
    SQLite would first scan every record into a Bloom filter).  With a
    ``narrow`` filter (few records: one developer, repository, team, session, a
    guardrail verdict other than clean, or a short time range) the blocks linked
    to the matching records are gathered first and each match is only looked up
    in that set, so a common word paired with a narrow filter does not join
    every match to its records.
    """
    if dialect == "postgresql":
        conditions = "".join(f" AND {clause}" for clause in filters.clauses()[0])
        return (
            f"SELECT {_COLUMNS}, ts_headline('simple', t.body, q.query, :headline) AS snippet "  # noqa: S608 -- fixed clauses, values bound
            "FROM (SELECT to_tsquery('simple', :query) AS query) q "
            "JOIN audit_text t ON t.tsv @@ q.query "
            "JOIN audit_block_sessions s ON s.digest = t.digest "
            "JOIN audit_records r ON r.id = s.record_id "
            "JOIN audit_blocks b ON b.digest = t.digest "
            f"WHERE TRUE{conditions} "
            "ORDER BY r.ts DESC, s.digest LIMIT :limit"
        )
    where = filters.clauses("f")[0]
    allowed = (
        f" AND EXISTS (SELECT 1 FROM audit_records f WHERE f.id = s.record_id"  # noqa: S608 -- fixed clauses, values bound
        f"{''.join(f' AND {clause}' for clause in where)})"
        if where
        else ""
    )
    # CROSS JOIN keeps this order: from each match to its links, their records, the block.
    joins = (
        "CROSS JOIN audit_records r ON r.id = s.record_id "
        "CROSS JOIN audit_blocks b ON b.digest = s.digest"
    )
    if not narrow:
        return (
            f"SELECT {_COLUMNS}, {_SNIPPET} AS snippet, t.rowid AS text_id "  # noqa: S608 -- fixed clauses, values bound
            "FROM audit_text t "
            f"CROSS JOIN audit_block_sessions s ON {_LINKS.format('t.rowid')} {joins} "
            f"WHERE audit_text MATCH :query{allowed} "
            "ORDER BY t.rowid DESC LIMIT :limit"
        )
    wanted = (
        "SELECT substr(s.digest, 1, 15) FROM audit_records f "  # noqa: S608 -- fixed clauses, values bound
        "JOIN audit_block_sessions s ON s.record_id = f.id "
        f"WHERE TRUE{''.join(f' AND {clause}' for clause in where)}"
    )
    return (
        f"SELECT {_COLUMNS}, h.snippet AS snippet, h.id AS text_id FROM ("  # noqa: S608 -- fixed clauses, values bound
        f"SELECT t.rowid AS id, {_SNIPPET} AS snippet FROM audit_text t "
        f"WHERE audit_text MATCH :query AND {_PREFIX.format('t.rowid')} IN ({wanted}) "
        "ORDER BY t.rowid DESC LIMIT :limit) h "
        f"CROSS JOIN audit_block_sessions s ON {_LINKS.format('h.id')} {joins} "
        f"WHERE TRUE{allowed} ORDER BY h.id DESC, s.chain"
    )


async def _narrow(
    db: Database, filters: Filters, where: list[str], params: dict[str, Any], limit: int
) -> bool:
    """Whether ``filters`` leave few enough records to gather their blocks first (SQLite).

    Gathering costs about one lookup per record the filter allows (n); walking the
    matches costs, for a common word, about ``limit * N / n`` lookups among N
    records.  They meet near ``sqrt(limit * N)``; below it, gather first.
    """
    if filters.session:
        return True
    if not (
        filters.developer
        or filters.team
        or filters.repository
        or filters.guard not in ("", "clean")
        or filters.since is not None
        or filters.until is not None
    ):
        return False
    total = await db.fetch_all(
        sa.text("SELECT coalesce(max(rowid), 0) AS n FROM audit_records"), "search: records"
    )
    cap = max(NARROW_RECORDS, math.isqrt(limit * int(total[0]["n"])))
    conditions = "".join(f" AND {clause}" for clause in where)
    sql = (
        "SELECT count(*) AS n FROM (SELECT 1 FROM audit_records r "  # noqa: S608 -- fixed clauses, values bound
        f"WHERE TRUE{conditions} LIMIT {cap + 1})"
    )
    rows = await db.fetch_all(sa.text(sql).bindparams(**params), "search: count the records")
    return int(rows[0]["n"]) <= cap


async def search(
    db: Database, text: str, filters: Filters | None = None, *, limit: int = 50
) -> SearchResult:
    """Blocks whose text matches ``text`` within ``filters``, newest first."""
    started = time.perf_counter()
    query = parse_query(text)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit {limit}: choose between 1 and {MAX_LIMIT}")
    filters = filters or Filters()
    where, params = filters.clauses()
    postgres = db.dialect == "postgresql"
    narrow = not postgres and await _narrow(db, filters, where, params, limit + 1)
    params["query"] = query.tsquery() if postgres else query.fts5()
    params["limit"] = limit + 1
    if postgres:
        params["headline"] = (
            f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords=35, MinWords=15, '
            'MaxFragments=2, FragmentDelimiter=" … "'
        )
    statement = sa.text(search_sql(db.dialect, filters, narrow=narrow)).bindparams(**params)
    rows = await db.fetch_all(statement, "search")
    if not postgres:  # a 15-digit prefix may (very rarely) reach a neighbour
        rows = [row for row in rows if text_rowid(row["digest"]) == row["text_id"]]
    hits = [
        Hit(
            digest=row["digest"],
            kind=row["kind"] or "",
            session=row["session"],
            record_id=row["record_id"],
            ts=float(row["ts"]),
            developer=row["developer"] or "",
            team=row["team"] or "",
            repository=row["repository"] or "",
            model=row["model"] or "",
            guard=row["guard"] or "",
            decision=row["decision"] or "",
            snippet=" ".join(str(row["snippet"] or "").split()),
        )
        for row in rows[:limit]
    ]
    hits.sort(key=lambda hit: -hit.ts)  # stable: index order within a moment
    return SearchResult(
        query=text,
        hits=hits,
        more=len(rows) > limit,
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )
