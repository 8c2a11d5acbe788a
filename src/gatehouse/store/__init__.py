"""Storage: the database, its schema and migrations, and the durable spool.

``errors.py``
    StoreError and friends; driver exceptions never leave this package.
``schema.py``
    SQLAlchemy Core tables, the source of truth for ``migrations/``.
``migrate.py``
    Runs the Alembic migrations shipped in ``migrations/``.
``db.py``
    Database: keys, revisions and usage records over SQLite or PostgreSQL.
``segments.py``
    The spool's files: checksummed lines in segments, and the checkpoint.
``spool.py``
    Spool (group-committed, crash-safe appends) and SpoolDrainer (delivers
    what was spooled to a sink, at least once).
"""
