"""``ghostwatch run``: one process serving every configured account.

The loop is asyncio; the work (IMAP sync, SMTP sends) is blocking and runs in worker
threads, at most one pass per account at a time. A pass is: sync the account, then
:func:`ghostwatch.sender.send_pending` (settle, queue what is due, send what may go,
each send preceded by a re-sync). What starts a pass:

* APScheduler's ``poll`` job every ``[daemon] poll_minutes`` for every account
  (coalesced, one instance, so a restart after downtime catches up once, not in a
  burst); this also covers the Sent folder, retries and steps becoming due;
* an IMAP IDLE watcher (:mod:`ghostwatch.watcher`) seeing news in an INBOX.

Due steps live in ghostwatch's own tables, never as persistent scheduler jobs: the
scheduler only says "look now". Signal handlers only set flags: SIGTERM/SIGINT stop
taking work, let a pass in flight finish (a send is completed or settled), close the
connections and return 0; SIGHUP reloads the config, and keeps the old one (logging
why) when the new one is invalid. With systemd (Type=notify) it reports READY=1 after
the first pass, WATCHDOG=1 from the loop, and a one-line STATUS=.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from imapclient.exceptions import IMAPClientError
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from ghostwatch.clock import Clock
from ghostwatch.config import AccountSettings, Settings, load_config
from ghostwatch.errors import GhostwatchError
from ghostwatch.instance import InstanceLock

__all__ = ["Daemon", "PassResult", "run_once"]

log = structlog.get_logger("ghostwatch.daemon")

_MAX_ACCOUNT_BACKOFF = 3600.0
#: Why a pass runs when it is routine; anything else (IDLE news) goes first.
_ROUTINE = frozenset({"poll"})
#: Routine passes running at once; news passes have workers of their own.
_POLL_SLOTS = 3


@dataclass
class PassResult:
    """What one pass over one account did."""

    account: str
    ok: bool
    error: str = ""
    outcomes: list[Any] = field(default_factory=list)


def run_pass(
    sessions: Any, settings: Settings, account: AccountSettings, clock: Clock, *, dry_run: bool
) -> PassResult:
    """Sync ``account``, then settle, queue and send (blocking; a worker thread)."""
    from ghostwatch.sender import send_pending
    from ghostwatch.sync import sync_account

    def resync() -> None:
        sync_account(account, sessions, clock.now(), connect_attempts=1)

    from ghostwatch.approval import maybe_send_digest, process_replies

    try:
        resync()
    except GhostwatchError as exc:
        log.error("pass_failed", account=account.name, error=str(exc))  # noqa: TRY400 - expected, no traceback
        return PassResult(account.name, ok=False, error=str(exc))
    if not dry_run:
        # Replies to digests first: a "send 1" this morning goes out in this pass.
        try:
            for reply in process_replies(sessions, settings, account, clock):
                log.info("digest_reply_handled", account=account.name, sender=reply.sender,
                         accepted=reply.accepted, reason=reply.reason)  # fmt: skip
        except (GhostwatchError, IMAPClientError, OSError) as exc:
            log.warning("digest_replies_not_read", account=account.name, error=str(exc))
    report = send_pending(
        sessions, settings, account, clock, dry_run=dry_run, resync=resync, fresh=True
    )
    if not dry_run:
        try:
            digest = maybe_send_digest(sessions, settings, account, clock)
        except GhostwatchError as exc:
            digest = f"digest not sent: {exc}"
        if digest is not None:
            log.info("digest", account=account.name, result=digest)
    for o in report.outcomes:
        if o.what in ("held", "would-send") and not o.row_id:
            continue
        emit = log.warning if o.what in ("failed", "uncertain", "refused") else log.info
        emit("outbox", account=account.name, row=o.row_id, what=o.what, step=o.step,
             to=o.to, detail=o.detail)  # fmt: skip
    return PassResult(account.name, ok=True, outcomes=list(report.outcomes))


def run_once(sessions: Any, settings: Settings, clock: Clock, *, dry_run: bool) -> list[PassResult]:
    """``run --once``: one pass for every account, in order."""
    return [
        run_pass(sessions, settings, account, clock, dry_run=dry_run)
        for account in settings.accounts
    ]


def counts(sessions: Any) -> tuple[int, int]:
    """(threads awaiting a reply, drafts queued or approved)."""
    from ghostwatch.store import OutboxRow, ThreadRow

    with sessions() as db:
        awaiting = db.scalar(
            select(func.count()).select_from(ThreadRow).where(ThreadRow.awaiting.is_(True))
        )
        queued = db.scalar(
            select(func.count())
            .select_from(OutboxRow)
            .where(OutboxRow.state.in_(("queued", "approved")))
        )
    return int(awaiting or 0), int(queued or 0)


def status_line(accounts: int, awaiting: int, queued: int) -> str:
    """One line for systemd's STATUS=, e.g. "2 accounts, 5 threads awaiting reply,
    2 drafts queued"."""
    return (
        f"{accounts} account{'s' if accounts != 1 else ''}, {awaiting} threads awaiting "
        f"reply, {queued} drafts queued"
    )


class Daemon:
    """The long-running service; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        config_path: Path | None,
        clock: Clock,
        *,
        dry_run: bool = False,
        notifier: Any = None,
        sessions_factory: Callable[[str], Any] | None = None,
    ) -> None:
        from ghostwatch.sdnotify import Notifier
        from ghostwatch.store import open_store

        self.settings = settings
        self.config_path = config_path
        self.clock = clock
        self.dry_run = dry_run
        self.notifier = notifier if notifier is not None else Notifier()
        from ghostwatch.metrics import Metrics

        self.metrics = Metrics(settings.metrics.listen)
        self.sessions = (sessions_factory or open_store)(settings.database.url)
        # Passes for news (IDLE, a lease taken) have workers of their own, so a reply is
        # not queued behind a poll of every account.
        self._executor = ThreadPoolExecutor(max_workers=3, thread_name_prefix="pass")
        self._urgent = ThreadPoolExecutor(max_workers=2, thread_name_prefix="news")
        self._running: dict[str, asyncio.Task[None]] = {}
        self._poll_queue: deque[str] = deque()
        self._routine_active = 0
        self._again: set[str] = set()
        self._backoff: dict[str, tuple[int, float]] = {}  # account -> (failures, not before)
        self._watchers: dict[str, Any] = {}
        self._stop = asyncio.Event()
        self._reload = False
        self._ready = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: Any = None
        from ghostwatch.leases import holder_id

        self.holder = holder_id()
        #: Accounts this process serves: all of them, or its leases when scaled out.
        self.held: set[str] = (
            set() if settings.daemon.scale_out else {a.name for a in settings.accounts}
        )

    # -- signals: flags only ---------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload = True
        if self._loop is not None:
            self._loop.call_soon(self._apply_reload)

    # -- passes ------------------------------------------------------------------------------
    def trigger(self, name: str, why: str) -> None:
        """Run a pass for account ``name``: news (IDLE) at once, a routine poll when one
        of the poll slots is free; right after the pass in flight if there is one."""
        if self._stop.is_set() or name not in self.held:
            return
        if name in self._running:
            self._again.add(name)
            return
        failures, not_before = self._backoff.get(name, (0, 0.0))
        if failures and time.monotonic() < not_before:
            log.debug("pass_deferred", account=name, why=why, failures=failures)
            return
        if why in _ROUTINE:
            if name not in self._poll_queue:
                self._poll_queue.append(name)
            self._pump()
            return
        # News goes first, and covers a poll of the same account still waiting its turn.
        if name in self._poll_queue:
            self._poll_queue.remove(name)
        self._start(name, why)

    def _pump(self) -> None:
        """Start waiting routine passes while fewer than ``_POLL_SLOTS`` run: a poll of
        200 accounts never stands between a reply and its pass."""
        while self._poll_queue and self._routine_active < _POLL_SLOTS and not self._stop.is_set():
            name = self._poll_queue.popleft()
            if name not in self._running:
                self._start(name, "poll")

    def _start(self, name: str, why: str) -> None:
        account = next((a for a in self.settings.accounts if a.name == name), None)
        if account is None:
            return
        if why in _ROUTINE:
            self._routine_active += 1
        self._running[name] = self._event_loop().create_task(self._pass(account, why))

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the daemon is not running")
        return self._loop

    async def _pass(self, account: AccountSettings, why: str) -> None:
        log.info("pass_started", account=account.name, why=why)
        started = time.monotonic()
        try:
            result = await self._event_loop().run_in_executor(
                self._executor if why in _ROUTINE else self._urgent,
                lambda: run_pass(
                    self.sessions, self.settings, account, self.clock, dry_run=self.dry_run
                ),
            )
        except Exception as exc:  # a bug must not take the other accounts down
            log.exception("pass_crashed", account=account.name)
            result = PassResult(account.name, ok=False, error=repr(exc))
        finally:
            self._running.pop(account.name, None)
            if why in _ROUTINE:
                self._routine_active -= 1
        self._pump()
        self.metrics.observe_pass(
            account.name, time.monotonic() - started, result.ok, result.outcomes
        )
        self._after_pass(result)
        if account.name in self._again:
            self._again.discard(account.name)
            self.trigger(account.name, "news during the last pass")

    def _after_pass(self, result: PassResult) -> None:
        if result.ok:
            self._backoff.pop(result.account, None)
        else:
            failures = self._backoff.get(result.account, (0, 0.0))[0] + 1
            delay = min(60.0 * 2 ** (failures - 1), _MAX_ACCOUNT_BACKOFF)
            self._backoff[result.account] = (failures, time.monotonic() + delay)
            log.warning("account_backoff", account=result.account, failures=failures,
                        retry_in_s=delay, error=result.error)  # fmt: skip
        if not self._ready and not self._running:
            self._ready = True
            self.notifier.ready()
            log.info("ready", accounts=len(self.settings.accounts))
        self._report_status()

    def _report_status(self) -> None:
        try:
            awaiting, queued = counts(self.sessions)
            self.metrics.set_counts(awaiting, queued)
            self.notifier.status(status_line(len(self.settings.accounts), awaiting, queued))
        except Exception:
            log.debug("status_failed", exc_info=True)

    def poll_all(self) -> None:
        for account in self.settings.accounts:
            self.trigger(account.name, "poll")  # only the accounts this process holds

    # -- IDLE watchers ------------------------------------------------------------------------
    def _start_watchers(self) -> None:
        from ghostwatch.watcher import IdleWatcher

        if not self.settings.daemon.idle:
            return
        loop = self._event_loop()

        def news(name: str) -> None:  # called from the watcher thread
            loop.call_soon_threadsafe(self.trigger, name, "IDLE: INBOX changed")

        renew = self.settings.daemon.idle_renew_minutes * 60
        for account in self.settings.accounts:
            if account.name not in self.held or account.name in self._watchers:
                continue
            watcher = IdleWatcher(account, news, renew=renew)
            watcher.start()
            self._watchers[account.name] = watcher

    def _stop_watchers(self, names: set[str] | None = None) -> None:
        for name in list(self._watchers):
            if names is None or name in names:
                self._watchers.pop(name).stop()

    # -- scale-out leases -------------------------------------------------------------------
    def _renew_leases(self) -> None:
        from ghostwatch.clock import SystemClock
        from ghostwatch.leases import renew

        ttl = timedelta(seconds=self.settings.daemon.lease_seconds)
        names = [a.name for a in self.settings.accounts]
        try:
            with self.sessions() as db:
                held = renew(db, names, self.holder, SystemClock().now(), ttl)
        except Exception as exc:
            # Without a renewed lease another process may take over: stop serving
            # rather than risk two processes working on one account.
            log.error("lease_renewal_failed", error=str(exc), dropped=sorted(self.held))  # noqa: TRY400
            held = set()
        gained, lost = held - self.held, self.held - held
        self.held = held
        if lost:
            log.info("leases_lost", accounts=sorted(lost), holder=self.holder)
            self._stop_watchers(lost)
        if gained:
            log.info("leases_taken", accounts=sorted(gained), holder=self.holder)
            self._start_watchers()
            for name in sorted(gained):
                self.trigger(name, "lease taken")
        if not self._ready and not held:
            # Nothing to serve yet (the others hold everything): we are up.
            self._ready = True
            self.notifier.ready()
            log.info("ready", accounts=0)

    # -- reload ---------------------------------------------------------------------------------
    def _apply_reload(self) -> None:
        if not self._reload:
            return
        self._reload = False
        self.notifier.reloading()
        try:
            settings, _path = load_config(self.config_path)
        except GhostwatchError as exc:
            log.error(  # noqa: TRY400 - expected, no traceback
                "config_reload_refused", error=str(exc), kept="the running configuration"
            )
            self.notifier.ready()
            return
        if settings.database.url != self.settings.database.url:
            log.error(
                "config_reload_refused",
                error="[database] url changed: restart ghostwatch to use another database",
                kept="the running configuration",
            )
            self.notifier.ready()
            return
        self._stop_watchers()
        self.settings = settings
        self._start_watchers()
        self._schedule_poll()
        for job in self._scheduler.get_jobs():
            if job.id.startswith("digest-"):
                job.remove()
        self._schedule_digests()
        log.info("config_reloaded", accounts=[a.name for a in settings.accounts])
        self.notifier.ready()
        self.poll_all()

    # -- scheduler ------------------------------------------------------------------------------
    @staticmethod
    def _on_loop(job: Callable[[], None]) -> Callable[[], Any]:
        """APScheduler runs plain functions in a worker thread; a coroutine runs on the
        event loop, where the daemon's state lives (and a watchdog ping then proves
        the loop is alive)."""

        async def run() -> None:
            job()

        run.__name__ = getattr(job, "__name__", "job")
        return run

    def _schedule_poll(self) -> None:
        self._scheduler.add_job(
            self._on_loop(self.poll_all),
            "interval",
            minutes=self.settings.daemon.poll_minutes,
            id="poll",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=int(self.settings.daemon.poll_minutes * 60),
            next_run_time=datetime.now(UTC),
        )

    def _schedule_digests(self) -> None:
        """A pass at each digest time (local), so the digest leaves on the minute; the
        pass itself decides whether one is owed (:func:`ghostwatch.approval.digest_due`)."""
        approval = self.settings.approval
        for i, hhmm in enumerate(approval.times):
            hour, minute = (int(x) for x in hhmm.split(":"))
            self._scheduler.add_job(
                self._on_loop(self.poll_all), "cron", hour=hour, minute=minute,
                day_of_week=",".join(approval.days),
                timezone=self.settings.policy.defaults.time_zone,
                id=f"digest-{i}", replace_existing=True, coalesce=True, max_instances=1,
                misfire_grace_time=3600,
            )  # fmt: skip

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit status."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self._loop = asyncio.get_running_loop()
        for sig, handler in (
            (signal.SIGTERM, self.request_stop),
            (signal.SIGINT, self.request_stop),
            (signal.SIGHUP, self.request_reload),
        ):
            self._loop.add_signal_handler(sig, handler)
        self._scheduler = AsyncIOScheduler(event_loop=self._loop, timezone="UTC")
        self._schedule_poll()
        ping = self.notifier.watchdog_interval()
        if ping:
            self._scheduler.add_job(self._on_loop(self.notifier.watchdog), "interval", seconds=ping,
                                    id="watchdog", coalesce=True, max_instances=1)  # fmt: skip
        if self.settings.daemon.scale_out:
            self._scheduler.add_job(
                self._on_loop(self._renew_leases), "interval",
                seconds=self.settings.daemon.lease_seconds / 3, id="leases",
                coalesce=True, max_instances=1, next_run_time=datetime.now(UTC),
            )  # fmt: skip
        self._schedule_digests()
        self._scheduler.start()
        self.metrics.start()
        self._start_watchers()
        if not self.settings.accounts:
            self._ready = True
            self.notifier.ready()
            log.warning("no_accounts", hint="add [[accounts]] to the config, then SIGHUP")
        log.info("daemon_started", accounts=len(self.settings.accounts), dry_run=self.dry_run)
        await self._stop.wait()
        return await self._shutdown()

    async def _shutdown(self) -> int:
        log.info("daemon_stopping", in_flight=sorted(self._running))
        self.notifier.stopping()
        self._scheduler.shutdown(wait=False)
        self._stop_watchers()
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
        self._executor.shutdown(wait=True)
        self._urgent.shutdown(wait=True)
        self.metrics.stop()
        if self.settings.daemon.scale_out:
            from ghostwatch.leases import release

            with self.sessions() as db:
                release(db, self.holder)
        log.info("daemon_stopped")
        return 0


def serve(settings: Settings, config_path: Path | None, clock: Clock, *, dry_run: bool) -> int:
    """Take the instance lock and run the daemon until it is told to stop."""
    if settings.daemon.scale_out:
        if make_url(settings.database.url).get_backend_name() != "postgresql":
            raise GhostwatchError(
                "[daemon] scale_out = true needs a PostgreSQL [database] url: several "
                "processes cannot share a SQLite file safely"
            )
        return asyncio.run(Daemon(settings, config_path, clock, dry_run=dry_run).run())
    with InstanceLock(settings.database.url):
        daemon = Daemon(settings, config_path, clock, dry_run=dry_run)
        return asyncio.run(daemon.run())
