"""The results store: one SQLite file, one row per evaluated design point, keyed by a content hash.

Rows are committed one at a time by the process that collects results (WAL mode, a busy timeout so
several writer processes can share a file safely). ``INSERT OR IGNORE`` on the primary key means a
re-run or a second writer never duplicates a point; a sweep killed at any moment resumes from the
committed rows. ``sweep_points`` records which sweeps contain which points (a point shared by two
sweeps is evaluated once).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,            -- ok | error
    model TEXT NOT NULL,
    recipe TEXT NOT NULL,
    params TEXT NOT NULL,            -- JSON: flat design parameters
    objectives TEXT NOT NULL,        -- JSON: metric name -> value
    total TEXT,                      -- JSON: NetworkResult.total
    layers TEXT,                     -- JSON: {"columns": [...], "rows": [[...], ...]}
    meta TEXT,                       -- JSON: arch figures for rooflines, graph key, ...
    error TEXT,
    seconds REAL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sweeps (name TEXT PRIMARY KEY, spec TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sweep_points (
    sweep TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (sweep, key)
);
"""
_COLUMNS = ("key", "status", "model", "recipe", "params", "objectives", "total", "layers", "meta", "error",
            "seconds")
_JSON_COLUMNS = ("params", "objectives", "total", "layers", "meta")


def point_key(payload: dict[str, Any]) -> str:
    """A stable hash of a point's full description (model, recipe, arch dict, mapper, version)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), default=_jsonable)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


class ResultStore:
    """A SQLite-backed store of sweep results (use as a context manager or call ``close``)."""

    def __init__(self, path: str | Path = "hwsim-results.sqlite", *, timeout_s: float = 60.0):
        self.path = str(path)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.conn = self._open(timeout_s)
                return
            except sqlite3.OperationalError as err:
                # switching to WAL or creating the schema while another process does the same can report
                # "locked" without waiting on the busy handler: retry until the timeout, as the handler would
                if "locked" not in str(err) and "busy" not in str(err) or time.monotonic() > deadline:
                    raise self._not_a_store(err) from None
                time.sleep(0.05)
            except sqlite3.DatabaseError as err:
                raise self._not_a_store(err) from None

    def _open(self, timeout_s: float) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)   # CREATE ... IF NOT EXISTS: safe when several processes race
        except BaseException:
            conn.close()
            raise
        return conn

    def _not_a_store(self, err: Exception) -> Exception:
        from hwsim.errors import ConfigError

        return ConfigError(f"{self.path}: not an hwsim results store (SQLite says: {err})")

    def _write(self, fn) -> Any:
        """Run ``fn(conn)`` inside one immediate transaction (serialized across processes)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            out = fn(self.conn)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return out

    # ----- writing -------------------------------------------------------------------------------
    def register_sweep(self, name: str, spec: dict[str, Any]) -> None:
        """Remember a sweep's spec (the latest one under that name wins)."""
        self._write(lambda c: c.execute("INSERT OR REPLACE INTO sweeps VALUES (?, ?, ?)",
                                        (name, _dumps(spec), time.time())))

    def put(self, record: dict[str, Any], *, sweep: str | None = None, replace: bool = False) -> bool:
        """Commit one record; returns False when the key was already stored (nothing written)."""
        values = [(_dumps(record.get(c)) if c in _JSON_COLUMNS else record.get(c)) for c in _COLUMNS]
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"

        def write(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(f"{verb} INTO points ({', '.join(_COLUMNS)}, created_at) "
                               f"VALUES ({', '.join('?' * len(_COLUMNS))}, ?)", (*values, time.time()))
            if sweep is not None:
                conn.execute("INSERT OR IGNORE INTO sweep_points VALUES (?, ?)", (sweep, record["key"]))
            return cur.rowcount > 0

        return self._write(write)

    def add_to_sweep(self, sweep: str, key: str) -> None:
        """Record that ``sweep`` contains the already-stored point ``key``."""
        self._write(lambda c: c.execute("INSERT OR IGNORE INTO sweep_points VALUES (?, ?)", (sweep, key)))

    # ----- reading -------------------------------------------------------------------------------
    def status(self, key: str) -> str | None:
        """``ok``, ``error`` or ``None`` (not stored)."""
        row = self.conn.execute("SELECT status FROM points WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def objectives(self, key: str) -> dict[str, float] | None:
        row = self.conn.execute("SELECT objectives FROM points WHERE key=? AND status='ok'", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def count(self, *, sweep: str | None = None, status: str | None = None) -> int:
        where, args = self._where(sweep, status)
        return self.conn.execute(f"SELECT count(*) FROM points {where}", args).fetchone()[0]

    def sweeps(self) -> dict[str, dict[str, Any]]:
        """Stored sweep specs by name."""
        return {name: json.loads(spec) for name, spec in self.conn.execute("SELECT name, spec FROM sweeps")}

    def _where(self, sweep: str | None, status: str | None) -> tuple[str, list[Any]]:
        clauses, args = [], []
        if sweep is not None:
            clauses.append("key IN (SELECT key FROM sweep_points WHERE sweep=?)")
            args.append(sweep)
        if status is not None:
            clauses.append("status=?")
            args.append(status)
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), args

    def records(self, *, sweep: str | None = None, status: str | None = "ok",
                columns: tuple[str, ...] = _COLUMNS) -> Iterator[dict[str, Any]]:
        """Stream stored records (JSON columns decoded) in insertion order."""
        where, args = self._where(sweep, status)
        cursor = self.conn.execute(f"SELECT {', '.join(columns)} FROM points {where} ORDER BY rowid", args)
        for row in cursor:
            yield {c: (json.loads(v) if c in _JSON_COLUMNS and v is not None else v) for c, v in zip(columns, row)}

    def get(self, key: str) -> dict[str, Any] | None:
        row = self.conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM points WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        return {c: (json.loads(v) if c in _JSON_COLUMNS and v is not None else v) for c, v in zip(_COLUMNS, row)}

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
