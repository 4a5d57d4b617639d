"""IMAP IDLE on INBOX (RFC 2177): notice a client's reply within seconds.

One thread per account, because imapclient is blocking. The thread only tells the
daemon "something changed in this account's INBOX"; the daemon then runs a normal
sync and send pass for that account (which re-judges the thread and cancels what the
reply made moot).

Connections die silently (a NAT drops the mapping, a laptop sleeps). RFC 2177 asks
clients to re-issue IDLE at least every 29 minutes; we do it every ``renew`` seconds
(9 minutes by default) and also whenever the server has said nothing for ``quiet``
seconds (Dovecot sends "* OK Still here" every 2 minutes): DONE needs an answer, so a
dead connection shows itself within ``quiet`` + the socket timeout, and the watcher
reconnects with a growing backoff. A server without IDLE is left to the daemon's
regular polling.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog
from imapclient.exceptions import IMAPClientError

from ghostwatch.config import AccountSettings
from ghostwatch.credentials import resolve_password
from ghostwatch.errors import AuthenticationError, GhostwatchError

__all__ = ["IdleWatcher"]

log = structlog.get_logger("ghostwatch.watcher")

#: Untagged responses that mean the mailbox changed (RFC 3501 section 7.3, 7.4).
_CHANGES = (b"EXISTS", b"EXPUNGE", b"RECENT", b"FETCH")


class IdleWatcher(threading.Thread):
    """Watches one account's INBOX; calls ``on_change(account_name)`` on news."""

    def __init__(
        self,
        account: AccountSettings,
        on_change: Callable[[str], None],
        *,
        renew: float = 540.0,
        quiet: float = 180.0,
        check: float = 15.0,
        max_backoff: float = 300.0,
    ) -> None:
        super().__init__(name=f"idle-{account.name}", daemon=True)
        self.account = account
        self.on_change = on_change
        self.renew = renew
        self.quiet = quiet
        self.check = check
        self.max_backoff = max_backoff
        self.stopping = threading.Event()
        #: False once the server turned out not to offer IDLE.
        self.supported = True
        #: Connections made so far (the first, then every reconnect).
        self.connections = 0

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        backoff = 5.0
        while not self.stopping.is_set():
            try:
                self._watch()
                backoff = 5.0
            except AuthenticationError as exc:
                log.error(  # noqa: TRY400 - expected, no traceback
                    "idle_login_refused", account=self.account.name, error=str(exc)
                )
                backoff = self.max_backoff
            except (IMAPClientError, OSError, GhostwatchError) as exc:
                log.warning(
                    "idle_connection_lost",
                    account=self.account.name,
                    error=str(exc),
                    retry_in_s=backoff,
                )
            if not self.supported:
                return
            if self.stopping.wait(backoff):
                return
            backoff = min(backoff * 2, self.max_backoff)

    def _watch(self) -> None:
        from ghostwatch.imap import connect

        password = resolve_password(self.account.imap, f"{self.account.name}/imap")
        session = connect(self.account, password)
        client = session.client
        self.connections += 1
        try:
            if not client.has_capability("IDLE"):
                self.supported = False
                log.info("idle_not_offered", account=self.account.name, fallback="polling")
                return
            client.select_folder("INBOX", readonly=True)
            if self.connections > 1:
                # Whatever arrived while we were away: let the daemon look now.
                self.on_change(self.account.name)
            log.info("idle_started", account=self.account.name)
            while not self.stopping.is_set():
                self._idle_round(client)
        finally:
            session.logout()

    def _idle_round(self, client: object) -> None:
        """One IDLE command, ended after ``renew`` seconds, ``quiet`` seconds of
        silence, news, or a stop request."""
        imap = client  # typed loosely: imapclient's idle API is untyped
        imap.idle()  # type: ignore[attr-defined]
        started = heard = time.monotonic()
        changed = False
        while not self.stopping.is_set():
            asked = time.monotonic()
            responses = imap.idle_check(timeout=self.check)  # type: ignore[attr-defined]
            now = time.monotonic()
            if any(_is_bye(r) for r in responses):
                raise ConnectionError("the server said BYE")
            if not responses and now - asked < self.check / 2:
                # idle_check returns at once with nothing only at end of file: the
                # server closed the connection without a BYE.
                raise ConnectionError("the server closed the connection")
            if responses:
                heard = now
                if any(_is_change(r) for r in responses):
                    changed = True
                    break
            if now - started >= self.renew or now - heard >= self.quiet:
                break
        # DONE needs the server's answer: on a dead connection this raises (or times
        # out), and run() reconnects. (An exception above skips it: nothing to end.)
        # News that arrived with the IDLE continuation itself sits in imapclient's
        # buffer, not on the socket idle_check polls: DONE hands it back.
        _text, pending = imap.idle_done()  # type: ignore[attr-defined]
        if any(_is_change(r) for r in pending or ()):
            changed = True
        if changed:
            self.on_change(self.account.name)


def _is_bye(response: object) -> bool:
    return isinstance(response, tuple) and len(response) >= 1 and response[0] == b"BYE"


def _is_change(response: object) -> bool:
    if isinstance(response, tuple) and len(response) >= 2:
        return response[1] in _CHANGES
    return False
