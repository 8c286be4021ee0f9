"""The key store in one SQLite file (WAL), shared by every worker process on a host.

Why it never stalls a gevent worker: SQLite's own busy handler would sleep inside C, freezing
every stream of the worker while another process holds the write lock. Here SQLite never waits
(busy time-out 0); a busy attempt is retried after ``time.sleep``, which gevent turns into a
cooperative pause, until the store's time-out, then StoreUnavailable. Each transaction is a few
indexed statements (tens of microseconds), so the write lock is only ever held that long.
"""

import contextlib
import os
import random
import secrets
import sqlite3
import threading
import time
from urllib.parse import unquote, urlsplit

from . import (
    PEPPER_MISMATCH,
    RESERVATION_SECONDS,
    RESPONSE_PURGE_BATCH,
    WINDOW_SECONDS,
    Identity,
    InvalidRequest,
    KeyInfo,
    NameTaken,
    NoSuchKey,
    PepperMismatch,
    ResponseHead,
    Store,
    StoredResponse,
    StoreUnavailable,
    response_owner,
)

_SCHEMA_VERSION = 5
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # digest is NULL once revoked: a revoked key's hash is not kept.
    "CREATE TABLE IF NOT EXISTS keys (name TEXT PRIMARY KEY, digest TEXT UNIQUE, rpm INTEGER,"
    " tokens_per_day INTEGER, created REAL NOT NULL, revoked REAL, aws_credentials INTEGER NOT NULL DEFAULT 0,"
    " images_per_day INTEGER)",
    # Image generations admitted per key and UTC day.
    "CREATE TABLE IF NOT EXISTS images (name TEXT NOT NULL, day TEXT NOT NULL, count INTEGER NOT NULL,"
    " PRIMARY KEY (name, day)) WITHOUT ROWID",
    # One row per admitted request of a key with an rpm limit, pruned past the window.
    "CREATE TABLE IF NOT EXISTS hits (name TEXT NOT NULL, t REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS hits_by_name ON hits (name, t)",
    "CREATE TABLE IF NOT EXISTS windows (name TEXT PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS usage (name TEXT NOT NULL, day TEXT NOT NULL, model TEXT NOT NULL,"
    " requests INTEGER NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,"
    " estimated_input_tokens INTEGER NOT NULL DEFAULT 0, estimated_output_tokens INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (name, day, model)) WITHOUT ROWID",
    # Tokens held for an admitted request under a budget until its usage is recorded.
    "CREATE TABLE IF NOT EXISTS reservations (id TEXT PRIMARY KEY, name TEXT NOT NULL, day TEXT NOT NULL,"
    " tokens INTEGER NOT NULL, expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS reservations_by_name ON reservations (name, day)",
    # The usage batches written in the last hour: one written again (a retry) adds nothing.
    "CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, t REAL NOT NULL)",
    # Stored /v1/responses: turns and conversation are the whole conversation's up to each one, so
    # that how long a chain is needs no walk; the JSON comes last, read only when asked for.
    "CREATE TABLE IF NOT EXISTS responses (id TEXT PRIMARY KEY, owner TEXT NOT NULL, previous TEXT NOT NULL,"
    " expires REAL NOT NULL, turns INTEGER NOT NULL, conversation INTEGER NOT NULL, size INTEGER NOT NULL,"
    " response BLOB NOT NULL, items BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS responses_by_owner ON responses (owner, expires)",
    "CREATE INDEX IF NOT EXISTS responses_by_expiry ON responses (expires)",
    # The bytes each owner's responses take, and under '*' everyone's: the bounds need no SUM.
    "CREATE TABLE IF NOT EXISTS response_bytes (owner TEXT PRIMARY KEY, bytes INTEGER NOT NULL) WITHOUT ROWID",
)
# The conversation a response belongs to, from it back to its first: (id, owner, at most how many).
_CHAIN = (
    "WITH RECURSIVE chain (id, step) AS (SELECT ?, 0 UNION ALL SELECT r.previous, chain.step + 1"
    " FROM responses r JOIN chain ON r.id = chain.id WHERE r.owner = ? AND r.previous != '' AND chain.step + 1 < ?)"
)
_EVERYONE = "*"  # a key name cannot be this
_BATCH_SECONDS = 3600
# Columns an older file lacks: (table, column, its definition).
_ADDED_COLUMNS = (
    ("usage", "estimated_input_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("usage", "estimated_output_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("keys", "aws_credentials", "INTEGER NOT NULL DEFAULT 0"),
    ("keys", "images_per_day", "INTEGER"),
)
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_FIRST_PAUSE = 0.0005
_LONGEST_PAUSE = 0.02


def _forget_window(db, name):
    db.execute("DELETE FROM hits WHERE name = ?", (name,))
    db.execute("DELETE FROM windows WHERE name = ?", (name,))


def _held(db, owner):
    row = db.execute("SELECT bytes FROM response_bytes WHERE owner = ?", (owner,)).fetchone()
    return row[0] if row else 0


def _forget_responses(db, rows):
    """Delete stored responses, each (id, owner, size), and take their bytes off the counts."""
    freed = {}
    for response_id, owner, size in rows:
        db.execute("DELETE FROM responses WHERE id = ?", (response_id,))
        for who in (owner, _EVERYONE):
            freed[who] = freed.get(who, 0) + size
    for who, size in freed.items():
        db.execute("UPDATE response_bytes SET bytes = bytes - ? WHERE owner = ?", (size, who))
    db.execute("DELETE FROM response_bytes WHERE bytes <= 0 AND owner != ?", (_EVERYONE,))
    return len(rows)


def _make_room(db, who, size, most):
    """Evict who's (or everyone's) least recently continued responses until ``size`` more bytes fit."""
    excess = _held(db, who) + size - most
    if excess <= 0:
        return 0
    if who == _EVERYONE:
        rows = db.execute("SELECT id, owner, size FROM responses ORDER BY expires")
    else:
        rows = db.execute("SELECT id, owner, size FROM responses WHERE owner = ? ORDER BY expires", (who,))
    gone = []
    for row in rows:
        gone.append(row)
        excess -= row[2]
        if excess <= 0:
            break
    rows.close()
    return _forget_responses(db, gone)


class _Busy(Exception):
    pass


def _is_busy(error):
    return (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _BUSY_CODES


class SQLiteStore(Store):
    """Keys, limits and usage in a SQLite file: ``sqlite:///relative.db`` or ``sqlite:////abs.db``."""

    def __init__(self, url, **options):
        path = unquote(urlsplit(url).path)[1:]
        if not path or path == ":memory:":
            raise InvalidRequest("SWIFTCHAT_STORE=sqlite:///... needs a file name, e.g. sqlite:///swiftchat.db")
        self.path = os.path.abspath(path)
        super().__init__(f"sqlite:///{self.path}", **options)
        self._connection = None
        self._pid = None
        self._lock = threading.Lock()

    # -- connection -------------------------------------------------------------------------

    def _connect(self, create):
        """The process's connection, opened (and the schema made) on first use; None if no file yet."""
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        self._connection = None  # one inherited across fork is never used
        if create:
            # The file holds who used what: readable by the server's user only.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        else:
            try:
                os.stat(self.path)
            except FileNotFoundError:
                return None  # no key was ever made: nothing to find, nothing to create
        connection = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit writes the log without fsync; only checkpoints sync.
            connection.execute("PRAGMA synchronous=NORMAL")
            if connection.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
                connection.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    connection.execute(statement)
                for table, column, definition in _ADDED_COLUMNS:
                    if column not in {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}:
                        connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                connection.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
                connection.execute("COMMIT")
        except BaseException:
            connection.close()
            raise
        self._connection, self._pid = connection, os.getpid()
        return connection

    def _drop(self):
        connection, self._connection = self._connection, None
        if connection is not None and self._pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                connection.close()

    def _run(self, work, write=False, create=True):
        """Run work(connection) — in one BEGIN IMMEDIATE transaction when write — retrying while busy."""
        deadline = time.monotonic() + self.timeout
        pause = _FIRST_PAUSE
        while True:
            try:
                with self._lock:
                    return self._attempt(work, write, create)
            except _Busy:
                pass
            except sqlite3.Error as error:
                if not _is_busy(error):
                    with self._lock:
                        self._drop()  # the next call opens the file afresh: recovery needs no restart
                    raise StoreUnavailable(f"The key store cannot be used: {error}.") from None
            except OSError as error:
                raise StoreUnavailable(f"The key store cannot be used: {error.strerror}.") from None
            if time.monotonic() + pause > deadline:
                raise StoreUnavailable(f"The key store stayed busy for {self.timeout:g} s.")
            time.sleep(pause * random.uniform(0.5, 1.5))  # gevent: other greenlets run meanwhile
            pause = min(pause * 2, _LONGEST_PAUSE)

    def _attempt(self, work, write, create):
        connection = self._connect(create)
        if connection is None:
            return work(None)
        if not write:
            return work(connection)
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if _is_busy(error):
                raise _Busy from None
            raise
        try:
            result = work(connection)
            connection.execute("COMMIT")
            return result
        except BaseException:
            if connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            raise

    def probe(self):
        """Open the file (making it if there is none) and take the write lock, writing nothing."""
        self._run(lambda db: None, write=True)

    def close(self):
        """Close this process's connection."""
        with self._lock:
            self._drop()

    # -- backend ----------------------------------------------------------------------------

    def _create(self, name, digest, limits, created, fingerprint, aws_credentials):
        def work(db):
            row = db.execute("SELECT value FROM meta WHERE name = 'pepper'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta (name, value) VALUES ('pepper', ?)", (fingerprint,))
            elif row[0] != fingerprint:
                raise PepperMismatch(PEPPER_MISMATCH)
            if db.execute("SELECT 1 FROM keys WHERE name = ? AND revoked IS NULL", (name,)).fetchone():
                raise NameTaken(f"A key named {name} exists; revoke it first to give {name} a new one.")
            db.execute(
                "INSERT INTO keys (name, digest, rpm, tokens_per_day, images_per_day, created, revoked,"
                " aws_credentials) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)"
                " ON CONFLICT (name) DO UPDATE SET digest = excluded.digest, rpm = excluded.rpm,"
                " tokens_per_day = excluded.tokens_per_day, images_per_day = excluded.images_per_day,"
                " created = excluded.created, revoked = NULL, aws_credentials = excluded.aws_credentials",
                (name, digest, *limits, created, int(aws_credentials)),
            )
            _forget_window(db, name)

        self._run(work, write=True)

    def _lookup(self, digest):
        def work(db):
            if db is None:
                return None
            row = db.execute(
                "SELECT name, rpm, tokens_per_day, aws_credentials, images_per_day FROM keys WHERE digest = ?",
                (digest,),
            ).fetchone()
            return Identity(row[0], row[1], row[2], bool(row[3]), row[4]) if row else None

        return self._run(work, create=False)

    def _admit(self, identity, now, day, reserve, image):
        name = identity.name
        budget = identity.tokens_per_day

        def work(db):
            left = None
            if budget is not None:
                db.execute("DELETE FROM reservations WHERE name = ? AND expires <= ?", (name, now))
                spent = db.execute(
                    "SELECT COALESCE(SUM(input_tokens + output_tokens), 0) FROM usage WHERE name = ? AND day = ?",
                    (name, day),
                ).fetchone()[0]
                held = db.execute(
                    "SELECT COALESCE(SUM(tokens), 0) FROM reservations WHERE name = ? AND day = ?", (name, day)
                ).fetchone()[0]
                left = budget - spent - held
                if left <= 0:
                    return "tokens_per_day", None, None
            if image:
                row = db.execute("SELECT count FROM images WHERE name = ? AND day = ?", (name, day)).fetchone()
                if row and row[0] >= identity.images_per_day:
                    return "images_per_day", None, None
            if identity.rpm is not None:
                # The window's size is kept beside it: COUNT(*) would cost a row per request in it.
                gone = db.execute("DELETE FROM hits WHERE name = ? AND t <= ?", (name, now - WINDOW_SECONDS)).rowcount
                row = db.execute("SELECT size FROM windows WHERE name = ?", (name,)).fetchone()
                size = (row[0] if row else 0) - gone
                if size >= identity.rpm:
                    oldest = db.execute("SELECT MIN(t) FROM hits WHERE name = ?", (name,)).fetchone()[0]
                    if oldest is not None:
                        if gone:
                            db.execute("UPDATE windows SET size = ? WHERE name = ?", (size, name))
                        return "rpm", oldest, None
                    size = 0  # an empty window: the size kept beside it had drifted
                db.execute("INSERT INTO hits (name, t) VALUES (?, ?)", (name, now))
                db.execute(
                    "INSERT INTO windows (name, size) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET size = excluded.size",
                    (name, size + 1),
                )
            if image:
                db.execute(
                    "INSERT INTO images (name, day, count) VALUES (?, ?, 1)"
                    " ON CONFLICT (name, day) DO UPDATE SET count = count + 1",
                    (name, day),
                )
            if left is None:
                return None, None, None
            reservation = secrets.token_hex(12)
            db.execute(
                "INSERT INTO reservations (id, name, day, tokens, expires) VALUES (?, ?, ?, ?, ?)",
                (reservation, name, day, min(reserve, left), now + RESERVATION_SECONDS),
            )
            return None, None, reservation

        # Always the write lock: a store that cannot take a write admits nothing (fail closed).
        return self._run(work, write=True)

    def _record(self, rows, settled, batch):
        now = time.time()

        def work(db):
            db.execute("DELETE FROM batches WHERE t < ?", (now - _BATCH_SECONDS,))
            if db.execute("INSERT OR IGNORE INTO batches (id, t) VALUES (?, ?)", (batch, now)).rowcount == 0:
                return
            db.executemany(
                "INSERT INTO usage (name, day, model, requests, input_tokens, output_tokens, estimated_input_tokens,"
                " estimated_output_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name, day, model) DO UPDATE SET requests = requests + excluded.requests,"
                " input_tokens = input_tokens + excluded.input_tokens,"
                " output_tokens = output_tokens + excluded.output_tokens,"
                " estimated_input_tokens = estimated_input_tokens + excluded.estimated_input_tokens,"
                " estimated_output_tokens = estimated_output_tokens + excluded.estimated_output_tokens",
                rows,
            )
            db.executemany("DELETE FROM reservations WHERE id = ?", [(reservation,) for reservation in settled])

        self._run(work, write=True)  # one transaction: a batch is written whole or not at all

    def _usage_rows(self, since):
        def work(db):
            if db is None:
                return []
            return db.execute(
                "SELECT name, day, model, requests, input_tokens, output_tokens, estimated_input_tokens,"
                " estimated_output_tokens FROM usage WHERE day >= ?",
                (since or "",),
            ).fetchall()

        return self._run(work, create=False)

    def _list(self):
        def work(db):
            if db is None:
                return []
            rows = db.execute(
                "SELECT name, rpm, tokens_per_day, created, revoked, aws_credentials, images_per_day FROM keys"
            )
            return [KeyInfo(*row[:5], bool(row[5]), row[6]) for row in rows.fetchall()]

        return self._run(work, create=False)

    def _revoke(self, name, now):
        def work(db):
            row = db.execute("SELECT digest FROM keys WHERE name = ? AND revoked IS NULL", (name,)).fetchone()
            changed = db.execute(
                "UPDATE keys SET digest = NULL, revoked = ? WHERE name = ? AND revoked IS NULL", (now, name)
            ).rowcount
            if not changed:
                raise NoSuchKey(f"No active key is named {name}.")
            _forget_window(db, name)
            if row and row[0]:  # no key will ever read them again
                owner = response_owner(name, row[0])
                gone = db.execute("SELECT id, owner, size FROM responses WHERE owner = ?", (owner,)).fetchall()
                _forget_responses(db, gone)

        self._run(work, write=True)

    def _set_limits(self, name, limits):
        def work(db):
            changed = db.execute(
                "UPDATE keys SET rpm = ?, tokens_per_day = ?, images_per_day = ? WHERE name = ? AND revoked IS NULL",
                (*limits, name),
            ).rowcount
            if not changed:
                raise NoSuchKey(f"No active key is named {name}.")

        self._run(work, write=True)

    def _stored_fingerprint(self):
        def work(db):
            if db is None:
                return None
            row = db.execute("SELECT value FROM meta WHERE name = 'pepper'").fetchone()
            return row[0] if row else None

        return self._run(work, create=False)

    def _save_response(self, owner, response_id, previous, response, items, now, expires, bounds):
        size = len(response) + len(items)

        def work(db):
            expired = db.execute(
                "SELECT id, owner, size FROM responses WHERE expires <= ? LIMIT ?", (now, RESPONSE_PURGE_BATCH)
            ).fetchall()
            _forget_responses(db, expired)
            same = db.execute("SELECT id, owner, size FROM responses WHERE id = ?", (response_id,)).fetchone()
            if same is not None:
                if same[1] != owner:
                    raise InvalidRequest("Another owner has a stored response with this id.")
                _forget_responses(db, [same])
            turns, conversation = 1, size
            if previous:
                row = db.execute(
                    "SELECT turns, conversation FROM responses WHERE id = ? AND owner = ? AND expires > ?",
                    (previous, owner, now),
                ).fetchone()
                if row is not None:
                    turns, conversation = row[0] + 1, row[1] + size
                    # A conversation is kept as long as its latest response: continuing it keeps it all.
                    db.execute(
                        _CHAIN + " UPDATE responses SET expires = ? WHERE owner = ? AND id IN (SELECT id FROM chain)",
                        (previous, owner, bounds.turns, expires, owner),
                    )
            evicted = _make_room(db, owner, size, bounds.owner_bytes)
            evicted += _make_room(db, _EVERYONE, size, bounds.total_bytes)
            db.execute(
                "INSERT INTO responses (id, owner, previous, expires, turns, conversation, size, response, items)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (response_id, owner, previous, expires, turns, conversation, size, response, items),
            )
            db.executemany(
                "INSERT INTO response_bytes (owner, bytes) VALUES (?, ?)"
                " ON CONFLICT (owner) DO UPDATE SET bytes = bytes + excluded.bytes",
                [(owner, size), (_EVERYONE, size)],
            )
            return evicted

        return self._run(work, write=True)

    def _response_head(self, owner, response_id, now):
        def work(db):
            if db is None:
                return None
            row = db.execute(
                "SELECT turns, conversation FROM responses WHERE id = ? AND owner = ? AND expires > ?",
                (response_id, owner, now),
            ).fetchone()
            return ResponseHead(*row) if row else None

        return self._run(work, create=False)

    def _response_chain(self, owner, response_id, now, turns):
        def work(db):
            if db is None:
                return []
            rows = db.execute(
                _CHAIN + " SELECT r.id, r.previous, r.response, r.items FROM chain JOIN responses r ON r.id = chain.id"
                " WHERE r.owner = ? AND r.expires > ? ORDER BY chain.step",
                (response_id, owner, turns, owner, now),
            ).fetchall()
            found, wanted = [], response_id
            for row in rows:  # stop at a gap: an earlier response that expired meanwhile is not joined over
                if row[0] != wanted:
                    break
                found.append(StoredResponse(row[0], row[1] or None, row[2], row[3]))
                wanted = row[1]
            return found

        return self._run(work, create=False)

    def _load_response(self, owner, response_id, now):
        def work(db):
            if db is None:
                return None
            row = db.execute(
                "SELECT previous, response, items FROM responses WHERE id = ? AND owner = ? AND expires > ?",
                (response_id, owner, now),
            ).fetchone()
            return StoredResponse(response_id, row[0] or None, row[1], row[2]) if row else None

        return self._run(work, create=False)

    def _delete_response(self, owner, response_id, now):
        def work(db):
            row = db.execute(
                "SELECT id, owner, size, expires FROM responses WHERE id = ? AND owner = ?", (response_id, owner)
            ).fetchone()
            if row is None:
                return False
            _forget_responses(db, [row[:3]])
            return row[3] > now

        return self._run(work, write=True)
