"""Where the routing log lives: a path or SQLAlchemy URL to an engine, and the schema upgrade.

A path means a SQLite file. SQLite is opened in WAL mode with ``synchronous=NORMAL``: a
committed row survives a killed writer process, readers never block the writer, and a
writer that is killed mid-transaction leaves the file readable (the unfinished transaction is
rolled back on the next open).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Table, create_engine, event, inspect, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from ..errors import MissingDependencyError, RoutingInputError
from .schema import comparisons, decisions, feedback, pool_candidates, settings

if TYPE_CHECKING:
    from .routing_log import RoutingLog

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_SECONDS = 5.0
"""How long a SQLite write waits on another writer's lock before it fails (and is counted)."""
_ALEMBIC_LOCK = threading.Lock()
"""Alembic keeps the running migration's context in a module global (``alembic.context``), so
two logs upgrading at once in one process would run each other's migrations: one at a time."""


def _new_alembic_lock() -> None:
    # A forked child gets a fresh lock: a thread upgrading at the fork would never release it.
    global _ALEMBIC_LOCK
    _ALEMBIC_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_new_alembic_lock)


def log_url(target: str | Path | URL | RoutingLog) -> URL:
    """The SQLAlchemy URL of a log given as a path (a SQLite file), as a URL, or as a
    :class:`~routellm_base.log.RoutingLog`: its URL, once what it has queued is written or
    has failed (:meth:`~routellm_base.log.RoutingLog.flush`), so a reader sees every record
    given to it.

    Raises :class:`RoutingInputError` for a malformed URL or a path whose folder does not exist.
    """
    from .routing_log import RoutingLog  # here: routing_log imports this module

    if isinstance(target, RoutingLog):
        target.flush()
        return target.url
    if isinstance(target, URL):
        return target
    text = str(target)
    if "://" in text:
        try:
            return make_url(text)
        except (ArgumentError, ValueError) as exc:
            raise RoutingInputError(f"log: not a valid SQLAlchemy URL: {text!r} ({exc})") from exc
    if not text or text == ":memory:":
        raise RoutingInputError(
            "log: give a file path or a database URL; an in-memory SQLite log would be lost "
            "with the writer thread's connection"
        )
    path = Path(text).expanduser().absolute()
    if not path.parent.is_dir():
        raise RoutingInputError(f"log: folder {path.parent} does not exist (log file {path})")
    return URL.create("sqlite", database=str(path))


def existing_log_url(target: str | Path | RoutingLog, reader: str) -> URL:
    """:func:`log_url` of a log that must already exist, for a command that reads one:
    :class:`RoutingInputError` (``"<reader>: no routing log at PATH"``) for a SQLite file that
    is not there, instead of creating an empty log (a database server's URL is not checked)."""
    url = log_url(target)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise RoutingInputError(f"{reader}: no routing log at {url.database}")
    return url


def unreadable_log_error(url: URL, reader: str, exc: DBAPIError) -> RoutingInputError:
    """One line for a log that could not be read: a SQLite file that is not a database, or a
    database server that could not be reached (the driver's first line says why)."""
    shown = url.render_as_string(hide_password=True)
    reason = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc).strip() else ""
    if url.get_backend_name() == "sqlite":
        return RoutingInputError(
            f"{reader}: {url.database} is not a routing log (not a SQLite database: {reason})"
        )
    if isinstance(exc, OperationalError):
        return RoutingInputError(f"{reader}: cannot connect to the routing log {shown}: {reason}")
    return RoutingInputError(f"{reader}: cannot read the routing log {shown}: {reason}")


def create_log_engine(url: URL) -> Engine:
    """An engine for ``url``; the driver is imported now, so a missing one fails here.

    Pooled connections are pinged when checked out, so one that died while idle (a server
    restart, a killed backend) is replaced instead of failing the next batch.
    """
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_SECONDS}
    try:
        engine = create_engine(url, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise MissingDependencyError(
            f"log: no driver for {url.render_as_string(hide_password=True)!r} ({exc}). "
            "PostgreSQL: pip install 'langchain-routellm[log]' (psycopg)."
        ) from exc
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_log_store(
    target: str | Path | URL | RoutingLog, reader: str, *, existing: bool = True
) -> Engine:
    """An engine on the log at ``target``, its schema created or upgraded, for ``reader`` (the
    command or option named in errors). ``existing``: the log must already be there
    (:func:`existing_log_url`). A file that is not a SQLite database, or a server that cannot be
    reached, is :func:`unreadable_log_error`'s one line (the message ``routellm report``
    gives), not a driver traceback."""
    url = existing_log_url(target, reader) if existing else log_url(target)
    engine = create_log_engine(url)
    try:
        upgrade(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise unreadable_log_error(url, reader, exc) from None
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def upgrade(engine: Engine, *, attempts: int = 3) -> None:
    """Bring the log's schema to the newest version with Alembic (creates it on first use).

    Several processes may open a new log at once: on PostgreSQL they queue on an advisory
    lock; on SQLite a loser of the race retries and then finds the schema current.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    for attempt in range(attempts):
        try:
            with _ALEMBIC_LOCK, engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(72110812)")
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            return
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def read_decisions(target: str | Path | RoutingLog) -> list[dict[str, Any]]:
    """Every decision of the log at ``target`` (a path, URL or RoutingLog), oldest first, as
    dicts. Errors: see :func:`read_rows`."""
    return read_rows(target, decisions, "read_decisions")


def read_comparisons(target: str | Path | RoutingLog) -> list[dict[str, Any]]:
    """Every shadow comparison of the log at ``target``, oldest first, as dicts."""
    return read_rows(target, comparisons, "read_comparisons")


def read_feedback(target: str | Path | RoutingLog) -> list[dict[str, Any]]:
    """Every feedback row of the log at ``target``, oldest first, as dicts."""
    return read_rows(target, feedback, "read_feedback")


def read_pool_candidates(target: str | Path | RoutingLog) -> list[dict[str, Any]]:
    """Every pool candidate row of the log at ``target`` (schema 5), oldest first, as dicts."""
    return read_rows(target, pool_candidates, "read_pool_candidates")


def read_rows(
    target: str | Path | RoutingLog, table: Table, reader: str = "log"
) -> list[dict[str, Any]]:
    """Every row of ``table`` in the log at ``target``, in ``id`` order, as dicts.

    Reading never creates a log; an existing log of an older schema is upgraded first, as its
    writers would. A :class:`~routellm_base.log.RoutingLog` that has written nothing yet has no
    rows. :class:`RoutingInputError`, naming ``reader``, for a SQLite path where no file is, a
    file that is not a SQLite database or has no routing-log tables, or a server that cannot be
    read.
    """
    from .routing_log import RoutingLog  # here: routing_log imports this module

    if isinstance(target, RoutingLog):
        url = log_url(target)
        if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
            return []  # its writer has not created the file yet
    else:
        url = existing_log_url(target, reader)
    engine = create_log_engine(url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            if decisions.name not in tables:
                if isinstance(target, RoutingLog):
                    return []
                shown = (
                    url.database
                    if url.get_backend_name() == "sqlite"
                    else url.render_as_string(hide_password=True)
                )
                raise RoutingInputError(
                    f"{reader}: {shown} is not a routing log (no {decisions.name} table)"
                )
        upgrade(engine)
        with engine.connect() as connection:
            result = connection.execute(select(table).order_by(table.c.id))
            return [dict(row._mapping) for row in result]
    except DBAPIError as exc:
        raise unreadable_log_error(url, reader, exc) from None
    finally:
        engine.dispose()


def read_salt(engine: Engine) -> str:
    """The log's prompt-hash salt (made by the first migration)."""
    with engine.connect() as connection:
        value = connection.execute(
            select(settings.c.value).where(settings.c.key == "prompt_hash_salt")
        ).scalar_one()
    return str(value)


PRICES_KEY = "prices"
"""The ``routellm_log_settings`` key of the prices the log's writers were given (JSON
``{model: [input, output]}``, USD per 1M tokens): what ``cost_usd`` was priced at, read back by
``routellm report`` so that a pool log's baseline needs no ``--price``."""


def stored_prices(connection: Any) -> dict[str, tuple[float, float]]:
    """The prices stored with the log (empty when none, or not JSON)."""
    import json

    value = connection.execute(
        select(settings.c.value).where(settings.c.key == PRICES_KEY)
    ).scalar_one_or_none()
    try:
        table = json.loads(value) if value else {}
        return {str(k): (float(v[0]), float(v[1])) for k, v in table.items()}
    except (TypeError, ValueError, IndexError, AttributeError):
        return {}


def store_prices(engine: Engine, prices: dict[str, tuple[float, float]]) -> None:
    """Merge ``prices`` into the log's stored prices (a later writer's price wins)."""
    import json

    if not prices:
        return
    with engine.begin() as connection:
        merged = {**stored_prices(connection), **prices}
        value = json.dumps({k: list(v) for k, v in sorted(merged.items())})
        if (
            connection.execute(
                settings.update().where(settings.c.key == PRICES_KEY).values(value=value)
            ).rowcount
            == 0
        ):
            connection.execute(settings.insert().values(key=PRICES_KEY, value=value))
