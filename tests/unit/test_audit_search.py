"""Search queries from user text: parsed safely, never an FTS5 or tsquery syntax error."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatehouse.audit.append import rowid_prefix, text_rowid
from gatehouse.audit.investigate import masked_query
from gatehouse.audit.search import Filters, Term, parse_query, parse_when
from gatehouse.errors import InvalidRequest

HOSTILE = [
    '"',
    '""',
    "*",
    "NEAR(",
    "NEAR(a b, 3)",
    "OR",
    "AND",
    "NOT",
    "-",
    "--",
    "col:",
    "body:secret",
    "digest:abc",
    "^start",
    "a OR",
    "OR b",
    "(((",
    ")",
    "'; DROP TABLE audit_text; --",
    "a\x00b",
    "{body digest}: x",
    '"unterminated phrase',
    "x* * y*",
    "-excluded",
    "é ü ß 日本",
    "a:b:c",
    "a & b | !c <-> d",
]


DIGESTS = {name: hashlib.sha256(name.encode()).hexdigest() for name in "abc"}


@pytest.fixture(scope="module")
def fts() -> sqlite3.Connection:
    """The migrated shape: body only, the rowid derived from the block digest."""
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE VIRTUAL TABLE audit_text USING fts5(body, tokenize='unicode61', columnsize=0)"
    )
    conn.executemany(
        "INSERT INTO audit_text (rowid, body) VALUES (?, ?)",
        [
            (text_rowid(DIGESTS["a"]), "deploy with key AKIAIOSFODNN7EXAMPLE col:y NEAR(x)"),
            (text_rowid(DIGESTS["b"]), "refund the duplicate invoice for customer 42"),
            (text_rowid(DIGESTS["c"]), "tune the ranking boost; never refund"),
        ],
    )
    return conn


def matches(conn: sqlite3.Connection, text: str) -> set[str]:
    expression = parse_query(text).fts5()
    rows = conn.execute("SELECT rowid FROM audit_text WHERE audit_text MATCH ?", (expression,))
    names = {text_rowid(digest): name for name, digest in DIGESTS.items()}
    return {names[row[0]] for row in rows}


@given(st.binary(min_size=32, max_size=32))
def test_an_fts_rowid_leads_back_to_its_digest(raw: bytes) -> None:
    digest = raw.hex()
    conn = sqlite3.connect(":memory:")
    prefix = conn.execute(f"SELECT {rowid_prefix('?')}", (text_rowid(digest),)).fetchone()[0]
    assert prefix == digest[:15]
    assert text_rowid(digest) >= 0


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_never_a_syntax_error(fts: sqlite3.Connection, text: str) -> None:
    try:
        expression = parse_query(text)
    except InvalidRequest as exc:
        refusal = exc.message
        expression = None
    if expression is None:
        assert "nothing to search for" in refusal
        return
    matches(fts, text)
    assert all(c.isalnum() or c in " '&|!():*<->" for c in expression.tsquery())


@given(st.text(max_size=80))
def test_any_text_is_a_valid_fts5_query_or_a_clear_refusal(text: str) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(body)")
    try:
        query = parse_query(text)
    except InvalidRequest:
        return
    conn.execute("SELECT * FROM t WHERE t MATCH ?", (query.fts5(),)).fetchall()
    # The tsquery is made of quoted lexemes (letters and digits) and operators only.
    assert all(c.isalnum() or c in " '&|!():*<->" for c in query.tsquery())


def test_the_query_language(fts: sqlite3.Connection) -> None:
    assert matches(fts, "refund") == {"b", "c"}
    assert matches(fts, "refund invoice") == {"b"}
    assert matches(fts, '"duplicate invoice"') == {"b"}
    assert matches(fts, '"invoice duplicate"') == set()
    assert matches(fts, "refund -ranking") == {"b"}
    assert matches(fts, "refund NOT ranking") == {"b"}
    assert matches(fts, "ranking OR deploy") == {"a", "c"}
    assert matches(fts, "dupl*") == {"b"}
    assert matches(fts, "AKIAIOSFODNN7EXAMPLE") == {"a"}
    assert matches(fts, "col:y") == {"a"}  # a phrase of two words, not a column filter
    assert matches(fts, "NEAR(x)") == {"a"}


def test_terms_hold_only_letters_and_digits() -> None:
    query = parse_query('foo.bar() "x y" baz*')
    assert query.any_of == ((Term(("foo", "bar")), Term(("x", "y")), Term(("baz",), True)),)
    assert query.tsquery() == "(('foo' <-> 'bar') & ('x' <-> 'y') & 'baz':*)"


@pytest.mark.parametrize("text", ["", "   ", "-alone", '"*"', "OR AND NOT"])
def test_nothing_to_find_is_a_clear_refusal(text: str) -> None:
    with pytest.raises(InvalidRequest, match="nothing to search for"):
        parse_query(text)


def test_overlong_queries_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="under 1000"):
        parse_query("a " * 600)


def test_times_and_filters() -> None:
    assert parse_when("24h", now=100_000.0) == 100_000.0 - 86_400
    assert parse_when("2026-11-02") == 1793577600.0
    assert parse_when("1700000000") == 1_700_000_000.0
    with pytest.raises(InvalidRequest, match="24h or 7d"):
        parse_when("yesterday")
    with pytest.raises(InvalidRequest, match="guardrail verdict"):
        Filters(guard="purple")
    where, params = Filters(decision="denied", developer="a@x").clauses()
    assert params["decision_prefix"] == "denied:%" and params["developer"] == "a@x"
    assert all(":" in clause for clause in where)  # values are always bound


def test_a_searched_key_is_masked_in_the_record_of_the_search() -> None:
    key = "AKIA" + "Q3XZ7LPA2MHRTN6W"
    recorded = masked_query(f'"{key}" deploy timeout')
    assert key not in recorded
    assert recorded == '"AKI************ (22 chars) deploy timeout'
    assert masked_query("retry_after_seconds handler") == "retry_after_seconds handler"
