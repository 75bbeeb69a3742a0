"""The stores' transaction (``_Tx``): a failed ``COMMIT`` rolls back (nothing later joins a
transaction left open), and only the session store's row writes join an open one."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from gateway_trio.store.sessions import _Tx


def _db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE c (pid INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)")
    return db


def test_a_failed_commit_is_rolled_back_and_the_next_transaction_stands_alone() -> None:
    db, lock = _db(), threading.Lock()
    with pytest.raises(sqlite3.IntegrityError), _Tx(db, lock):  # the deferred foreign key fails the COMMIT
        db.execute("INSERT INTO c VALUES (1)")
    assert not db.in_transaction and lock.acquire(blocking=False)
    lock.release()
    with _Tx(db, lock):
        db.execute("INSERT INTO p VALUES (1)")
    assert not db.in_transaction
    assert db.execute("SELECT count(*) FROM c").fetchone() == (0,)  # the failed one left nothing
    assert db.execute("SELECT count(*) FROM p").fetchone() == (1,)


def test_only_a_joining_transaction_runs_inside_one_already_open() -> None:
    db, lock = _db(), threading.RLock()
    db.execute("BEGIN IMMEDIATE")
    with _Tx(db, lock, join=True):  # the writer's batch: its rows go with the open transaction
        db.execute("INSERT INTO p VALUES (2)")
    assert db.in_transaction
    with pytest.raises(sqlite3.OperationalError), _Tx(db, lock):
        pass
    db.execute("ROLLBACK")
    assert db.execute("SELECT count(*) FROM p").fetchone() == (0,)
