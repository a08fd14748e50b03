"""The database: one engine per app, one session per request (on ``g``), and ``init-db``.

SQLite (the default, ``<instance>/shopping.sqlite``) runs in WAL mode with a busy timeout, so
readers never wait for writers and several gunicorn workers can share the file. Write requests
open their transaction with ``BEGIN IMMEDIATE``: the write lock is taken up front, so a transaction
never has to upgrade a read lock, which SQLite would refuse at once with "database is locked".
"""

from __future__ import annotations

import logging
import sqlite3
import weakref
from pathlib import Path

import click
from flask import Flask, current_app, g
from flask.cli import with_appcontext
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from .errors import error_response, server_error
from .models import Base

log = logging.getLogger(__name__)

#: Seconds a SQLite writer waits for the lock before giving up (answered as 503, never 500).
SQLITE_BUSY_TIMEOUT = 15
EXTENSION = "shopping_api.db"
#: What an API whose tables were never created answers, on every route that needs them.
SCHEMA_MISSING = "the database has no tables yet; create them with `flask --app shopping_api init-db`"


def database_url(app: Flask) -> str:
    url: str | None = app.config["SETTINGS"].database_url
    if url:
        return url
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(app.instance_path) / 'shopping.sqlite'}"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout, foreign keys and explicit BEGINs."""
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Take transaction control away from the sqlite3 module so "begin" below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL cannot corrupt the file; a power cut may only drop the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def get_engine() -> Engine:
    engine: Engine = current_app.extensions[EXTENSION]
    return engine


def get_session(*, write: bool = False) -> Session:
    """The request's session. Call with ``write=True`` first in views that write."""
    if "db_session" not in g:
        engine = get_engine()
        if write:
            engine = engine.execution_options(sqlite_immediate=True)
        elif engine.dialect.name == "postgresql":
            # Each statement of a read is its own transaction: under READ COMMITTED each one sees
            # a new snapshot anyway, and the request saves the BEGIN and ROLLBACK round trips
            # (a view that writes must ask for write=True first, or its writes commit one by one).
            engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        g.db_session = Session(engine, expire_on_commit=False)
    session: Session = g.db_session
    return session


def close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def unavailable_reason(exc: OperationalError) -> str:
    """The driver's first line (e.g. "connection refused"), which names no password."""
    lines = str(exc.orig or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def create_schema(engine: Engine) -> None:
    """Create missing tables and indexes; existing ones are left as they are."""
    Base.metadata.create_all(engine)


def schema_present(engine: Engine) -> bool:
    """Whether every table of the models exists (raises when the database does not answer)."""
    existing = set(inspect(engine).get_table_names())
    return all(table.name in existing for table in Base.metadata.sorted_tables)


def ping() -> None:
    """Raise unless the database answers a trivial query."""
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create the database schema (safe to run again)."""
    engine = get_engine()
    try:
        create_schema(engine)
    except OperationalError as exc:
        raise click.ClickException(f"cannot reach the database: {unavailable_reason(exc)}") from None
    click.echo(f"schema ready: {engine.url.render_as_string(hide_password=True)}")


def _database_error(exc: DBAPIError) -> Response:
    # A missing table is "no such table" (an OperationalError) on SQLite and UndefinedTable (a
    # ProgrammingError) on PostgreSQL: either way no retry helps, only init-db does. Asked only
    # when a query failed, so a working database pays nothing for it.
    try:
        present = schema_present(get_engine())
    except SQLAlchemyError:
        present = True  # the database does not answer at all: say that instead
    if not present:
        log.error("database schema missing: run `flask --app shopping_api init-db`")
        return error_response(503, "schema_missing", SCHEMA_MISSING)
    if isinstance(exc, OperationalError):
        return _database_unavailable(exc)
    return server_error(exc)


def _database_unavailable(exc: OperationalError) -> Response:
    # Connection lost, server down, or SQLite still locked after the busy timeout: worth a retry.
    # Only the class is logged: the message can carry connection details.
    log.warning("database unavailable: %s", type(exc.orig).__name__ if exc.orig else type(exc).__name__)
    return error_response(
        503,
        "temporarily_unavailable",
        "the database is unavailable; retry shortly",
        headers={"Retry-After": "1"},
    )


def init_app(app: Flask) -> None:
    engine = app.extensions[EXTENSION] = make_engine(database_url(app))
    # Close pooled connections when the app goes away (tests build many apps in one process).
    weakref.finalize(app, engine.dispose)
    app.teardown_appcontext(close_session)
    app.register_error_handler(DBAPIError, _database_error)
    app.cli.add_command(init_db_command)
