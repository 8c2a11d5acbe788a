"""Audit & forensics: every prompt, response and tool call, stored once, tamper-evident.

``capture.py``
    Pure.  `ResponseAssembler` rebuilds a response's blocks from the relayed
    SSE; `AuditCapture` turns one request into a spool entry (envelope, base +
    tail block list, contents of blocks not sent recently).
``records.py``
    Pure.  Record rows, their chain and hash; admin records from events.
``append.py``
    Blocks, links and chained records written inside a caller's transaction
    (also the hook the store modules call for administrative events).
``store.py``
    `write_audit`: the spool sink for audit entries.
``chain.py``
    Daily roots over all chains, and `verify`.
``crypto.py``
    AES-256-GCM keyring for block contents at rest.
``retention.py``
    Retention policy, legal holds and `gc` (mark-and-sweep of blocks).
``search.py``, ``transcript.py``, ``investigate.py``
    The read side: search, a session's transcript, investigations.

Tables (``gatehouse.store.schema``): ``audit_blocks`` (digest → canonical
bytes, maybe compressed and encrypted: see ``crypto.py``), ``audit_records``
(one envelope per request or admin action; ``chain``/``seq``/``prev_hash``/
``hash``; request blocks = the first ``base_len`` of ``base_id``'s blocks +
``tail``), ``audit_block_sessions``
(where each block entered each chain), ``audit_roots``, ``audit_holds``,
``audit_retention``, ``audit_deletions``; and ``audit_text``, the search index:
an FTS5 table on SQLite (``body`` only; its rowid derives from the digest, see
``append.rowid_prefix``), a table with a generated ``tsvector`` (GIN-indexed) on
PostgreSQL.
"""
