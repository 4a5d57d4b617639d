"""The message store: SQLAlchemy 2 models and the engine.

SQLite by default (WAL, one file), PostgreSQL by URL. The schema is owned by the
Alembic migrations in ``ghostwatch/migrations``; :func:`open_store` upgrades a
database to the latest revision before use.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    false,
)
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from ghostwatch.errors import StoreError


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC; SQLite would otherwise hand back naive ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Folder(Base):
    """One synced IMAP folder and where its sync stands."""

    __tablename__ = "folders"
    __table_args__ = (UniqueConstraint("account", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(512))
    role: Mapped[str] = mapped_column(String(16))  # inbox | sent | all | extra
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uidnext: Mapped[int | None] = mapped_column(BigInteger)
    highestmodseq: Mapped[int | None] = mapped_column(BigInteger)
    messages: Mapped[int | None] = mapped_column(Integer)
    # Highest UID fetched and committed: a sync interrupted mid-way resumes after it.
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MessageRow(Base):
    """What ghostwatch knows of one message in one folder (headers only)."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("folder_id", "uid"),
        Index("ix_messages_account_msgid", "account", "message_id"),
        Index("ix_messages_account_thread", "account", "thread_id"),
        Index("ix_messages_account_gm_msgid", "account", "gm_msgid"),
        Index("ix_messages_account_gm_thrid", "account", "gm_thrid"),
        Index("ix_messages_account_from", "account", "from_addr"),
        Index("ix_messages_account_date", "account", "date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
    uid: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[str] = mapped_column(Text, default="")  # space-separated ids
    subject: Mapped[str] = mapped_column(Text, default="")
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(320), default="")
    to_addrs: Mapped[str] = mapped_column(Text, default="")  # space-separated
    cc_addrs: Mapped[str] = mapped_column(Text, default="")
    reply_to: Mapped[str] = mapped_column(Text, default="")
    date: Mapped[datetime] = mapped_column(UTCDateTime)
    internal_date: Mapped[datetime] = mapped_column(UTCDateTime)
    size: Mapped[int] = mapped_column(Integer, default=0)
    direction: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[str] = mapped_column(Text, default="")  # "; "-separated
    content_type: Mapped[str] = mapped_column(String(100), default="text/plain")
    problems: Mapped[str] = mapped_column(Text, default="")
    # Bounces: which addresses failed, and the Message-ID of what bounced.
    bounced_addrs: Mapped[str] = mapped_column(Text, default="")
    bounced_message_id: Mapped[str | None] = mapped_column(String(998))
    # Auto-replies: the start of the text (for return dates); never logged.
    auto_reply_text: Mapped[str | None] = mapped_column(Text)
    gm_msgid: Mapped[int | None] = mapped_column(BigInteger)
    gm_thrid: Mapped[int | None] = mapped_column(BigInteger)
    thread_id: Mapped[str | None] = mapped_column(String(32))


class ThreadRow(Base):
    """The judgment of one thread, refreshed after every sync."""

    __tablename__ = "threads"
    __table_args__ = (
        Index("ix_threads_awaiting", "account", "awaiting"),
        Index("ix_threads_subject_key", "account", "subject_key"),
    )

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    thread_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(24))
    awaiting: Mapped[bool] = mapped_column(Boolean, default=False)
    awaiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    counterpart: Mapped[str | None] = mapped_column(String(320))
    last_outgoing_message_id: Mapped[str | None] = mapped_column(String(998))
    last_activity: Mapped[datetime] = mapped_column(UTCDateTime)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    notes: Mapped[str] = mapped_column(Text, default="")  # newline-separated
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    counterparts: Mapped[str] = mapped_column(Text, default="", server_default="")
    first_unanswered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # threads.subject_key of the thread's subject (None: too generic to join threads by).
    subject_key: Mapped[str | None] = mapped_column(String(40))


class ThreadKey(Base):
    """A subject key of one part of a thread that Gmail joined (X-GM-THRID) to parts
    with other keys; the thread's own key is ``threads.subject_key``. New mail the
    subject fallback could join to that part re-threads the whole thread."""

    __tablename__ = "thread_keys"
    __table_args__ = (Index("ix_thread_keys_account_key", "account", "subject_key"),)

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    thread_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject_key: Mapped[str] = mapped_column(String(40), primary_key=True)


class Mention(Base):
    """One Message-ID a stored message names (its own, In-Reply-To, References).

    The reverse index of the reference graph: new mail re-threads only the threads
    that mention one of its ids, instead of the whole mailbox.
    """

    __tablename__ = "mentions"
    __table_args__ = (Index("ix_mentions_account_msgid", "account", "msgid"),)

    message_pk: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    msgid: Mapped[str] = mapped_column(String(998), primary_key=True)
    account: Mapped[str] = mapped_column(String(64))


class Tracking(Base):
    """What the user said about a thread: its stage, its invoice, stop."""

    __tablename__ = "tracking"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    thread_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    stage: Mapped[str | None] = mapped_column(String(32))
    invoice_number: Mapped[str | None] = mapped_column(String(64), index=True)
    amount: Mapped[str | None] = mapped_column(String(32))  # a Decimal, kept exact as text
    currency: Mapped[str | None] = mapped_column(String(3))
    due: Mapped[date | None] = mapped_column(Date)
    attachment: Mapped[str | None] = mapped_column(Text)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stopped: Mapped[str | None] = mapped_column(Text)
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StepLog(Base):
    """A follow-up step handled for one silence of one thread; never two alike.

    ``anchor`` is the Message-ID of the user's message that started the silence:
    a new message from the user starts a new silence and the policy over again.
    """

    __tablename__ = "step_log"
    __table_args__ = (UniqueConstraint("account", "thread_id", "anchor", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    thread_id: Mapped[str] = mapped_column(String(32))
    anchor: Mapped[str] = mapped_column(String(998))
    step: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxRow(Base):
    """One follow-up to send: written before anything is sent, one row per step of
    one silence of one thread (the unique constraint is what makes a second copy
    impossible), moved through its states by :mod:`ghostwatch.outbox`."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("account", "thread_id", "anchor", "step"),
        UniqueConstraint("message_id"),
        Index("ix_outbox_state", "account", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    thread_id: Mapped[str] = mapped_column(String(32))
    anchor: Mapped[str] = mapped_column(String(998))
    step: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))
    to_addr: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(998))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    attachment: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What sending needs without looking at the thread again (0004).
    client: Mapped[str] = mapped_column(String(320), default="", server_default="")
    to_name: Mapped[str] = mapped_column(String(320), default="", server_default="")
    in_reply_to: Mapped[str] = mapped_column(String(998), default="", server_default="")
    references: Mapped[str] = mapped_column(Text, default="", server_default="")  # space-separated
    locale: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A copy sits in the IMAP Drafts folder ([sending] drafts_folder).
    in_drafts: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Lease(Base):
    """Scale-out: the process (``holder``) serving ``account`` until ``expires_at``."""

    __tablename__ = "leases"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DigestRow(Base):
    """A digest sent to the owner: its token (hashed), its numbered items and the MAC
    binding them (:mod:`ghostwatch.digesttoken`)."""

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    to_addr: Mapped[str] = mapped_column(String(320))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    mac: Mapped[str] = mapped_column(String(64))
    items: Mapped[str] = mapped_column(Text)  # JSON [[number, outbox row id, body hash], ...]
    # What the digest showed (items, tasks, flags): a digest identical to the last one
    # is not sent again.
    fingerprint: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DigestAction(Base):
    """A command carried out for one item of one digest: each item acts once."""

    __tablename__ = "digest_actions"
    __table_args__ = (UniqueConstraint("digest_id", "item"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    item: Mapped[int] = mapped_column(Integer)
    verb: Mapped[str] = mapped_column(String(16))
    reply_message_id: Mapped[str] = mapped_column(String(998))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class HandledReply(Base):
    """A reply to a digest that was looked at (whatever the outcome): never twice."""

    __tablename__ = "handled_replies"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(998), primary_key=True)
    outcome: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite files get WAL and their directory is created."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"database.url {url!r} is not a database URL") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"database driver for {parsed.drivername} is not installed "
            "(for PostgreSQL: pip install 'ghostwatch[postgres]')"
        ) from exc


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision."""
    from alembic import command

    try:
        command.upgrade(_alembic_config(engine), "head")
    except OperationalError as exc:
        raise StoreError(f"database {engine.url!r}: {exc.orig}") from exc


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg).get_current_head()


_T = TypeVar("_T")

#: Values per ``IN (...)`` list: well under every backend's bound-parameter limit.
IN_CHUNK = 500


def in_chunks(values: Iterable[_T], size: int = IN_CHUNK) -> Iterator[list[_T]]:
    """``values`` in lists of at most ``size``, for ``IN (...)`` queries and deletes."""
    items = list(values)
    for i in range(0, len(items), size):
        yield items[i : i + size]


def insert_plain(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ``rows`` (dicts naming the same columns) in one executemany on the DBAPI
    cursor (see :func:`insert_values`).

    Python-side column defaults are not applied: a column with one must be in the rows.
    """
    if not rows:
        return
    names = tuple(rows[0])
    missing = [c.name for c in table.columns if c.name not in names and c.default is not None]
    if missing:
        raise ValueError(f"insert into {table.name}: rows lack {', '.join(missing)}")
    width = len(names)
    values: list[tuple[Any, ...]] = []
    for row in rows:
        if len(row) != width:
            raise ValueError(f"insert into {table.name}: rows name different columns")
        values.append(tuple(row[n] for n in names))
    insert_values(conn, table, names, values)


def insert_values(
    conn: Connection, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """INSERT ``rows`` (values in the order of ``names``) in one executemany on the
    DBAPI cursor, each value converted by its column type's bind processor: what
    SQLAlchemy's ``execute(insert(table), ...)`` stores, without its per-row parameter
    handling, which costs more than the insert itself."""
    if not rows:
        return
    columns = [table.c[name] for name in names]  # KeyError for a name not a column
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    # The table's own names, quoted; every value is bound.
    into = f"{dialect.identifier_preparer.format_table(table)} "
    into += f"({', '.join(quote(c.name) for c in columns)})"
    sql = f"INSERT INTO {into} VALUES ({', '.join([mark] * len(columns))})"  # noqa: S608
    processors = [
        (i, proc)
        for i, column in enumerate(columns)
        if (proc := column.type.dialect_impl(dialect).bind_processor(dialect)) is not None
    ]
    params: list[Sequence[Any]] = list(rows)
    if processors:
        for n, row in enumerate(params):
            values = list(row)
            for i, proc in processors:
                values[i] = proc(values[i])
            params[n] = tuple(values)
    conn.exec_driver_sql(sql, params)


def open_store(url: str, *, migrate: bool = True) -> sessionmaker[Any]:
    """Engine + session factory, migrated to head unless ``migrate`` is False."""
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    return sessionmaker(engine, expire_on_commit=False)
