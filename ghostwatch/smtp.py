"""The SMTP side of the outbox: hand one message to the account's server, once.

:func:`send_message` never raises for mail or network trouble; it returns a
:class:`SendResult` whose outcome tells the caller what it may do next:

``SENT``
    The server answered the end of the message with a 2yz reply (RFC 5321
    section 4.1.1.4). From that reply on the server has taken responsibility
    for the message (section 6.1), so it is ``SENT`` even if QUIT or closing
    the connection fails afterwards.
``RETRY``
    Nothing went out and trying again later may work: the server could not be
    reached, did not answer in time, dropped the connection before the end of
    the message was sent, or gave a transient 4yz reply (section 4.2.1) to
    MAIL, RCPT, DATA or the end of data, e.g. 421 (service closing), 450/451
    (try later, greylisting), 452 (insufficient storage, too many recipients).
    A 4yz after the end of data is safe to retry: the server must not deliver
    a message it answered that way (section 4.2.5).
``FAILED``
    Nothing went out and retrying unchanged will not help: a 5yz reply (e.g.
    550 mailbox unavailable, 554 relay access denied, 552 too big), login
    refused, a TLS certificate that is not trusted, a server that does not
    offer what the configuration requires (STARTTLS, AUTH), a failing
    ``token_command``.
``UNCERTAIN``
    The whole message, end-of-data mark included, was handed to the connection,
    and then the connection dropped, timed out or produced garbage before the
    final reply was read. The server may well have accepted and delivered it
    (the duplicate-message window of RFC 1047). The caller must not resend on
    its own; a human decides, e.g. after looking at the Sent folder.

Transport security (RFC 8314): ``security = "tls"`` connects with implicit TLS;
``"starttls"`` upgrades with STARTTLS (RFC 3207) and refuses to go on, before
AUTH or MAIL, if the server does not offer it; ``"none"`` is only accepted for a
loopback host (the configuration enforces it). Certificates are always verified
against the system store plus ``ca_file``; a bad one is ``FAILED``, never a
retry without TLS.

Every step (connect and TLS handshake, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA,
end of data) waits at most ``timeout`` seconds from the account's settings.
RFC 5321 section 4.5.3.2 suggests up to 10 minutes for the reply to the end of
data, where servers scan the message; a shorter ``timeout`` there turns a slow
acceptance into ``UNCERTAIN``, never into a duplicate.

Neither the password, the access token nor the message body is ever logged or
put in :attr:`SendResult.message`.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from enum import StrEnum

import aiosmtplib
import structlog
from aiosmtplib.email import flatten_message

from ghostwatch import failpoints
from ghostwatch.config import AccountSettings, Security, SmtpSettings, is_loopback
from ghostwatch.credentials import run_secret_command
from ghostwatch.errors import CredentialError

__all__ = ["SendOutcome", "SendResult", "check_login", "send_message", "send_message_sync"]

log = structlog.get_logger("ghostwatch.smtp")

_LINE_END = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_MAX_MESSAGE_LEN = 400


class SendOutcome(StrEnum):
    """What became of one attempt; see the module docstring for each value."""

    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    UNCERTAIN = "uncertain"


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome, the SMTP reply code behind it (None without one) and one line
    for the user, which never contains the password."""

    outcome: SendOutcome
    code: int | None
    message: str


class _OutcomeError(Exception):
    """A decision reached mid-dialogue (refusal, missing feature): stop here."""

    def __init__(self, outcome: SendOutcome, code: int | None, message: str) -> None:
        super().__init__(message)
        self.result = SendResult(outcome, code, message)


async def send_message(
    account: AccountSettings,
    password: str,
    msg: EmailMessage,
    *,
    mail_from: str,
    rcpts: Sequence[str],
    token_command: str | None = None,
) -> SendResult:
    """Send ``msg`` through ``account.smtp`` to ``rcpts`` with envelope sender ``mail_from``.

    Authentication: with ``token_command``, SASL XOAUTH2 (the command runs through
    ``/bin/sh -c``; the first line it prints is the OAuth 2.0 access token and
    ``password`` is unused); otherwise AUTH PLAIN or LOGIN (RFC 4954) with
    ``password``. A 535 (RFC 4954 section 6, bad credentials) or 534 (an app
    password or a web login is needed) reply is ``FAILED`` with "login refused
    for USER ...", 454 (temporary authentication failure) is ``RETRY``. A server
    that offers no AUTH at all is only used without logging in when it is on
    loopback with ``security = "none"`` (a local relay); anywhere else that is
    ``FAILED``.

    Recipients: the message goes out only if the server accepts every RCPT.
    When it refuses some, DATA is never sent, so no one receives it, and the
    result is ``FAILED`` naming the refused addresses, even if those refusals
    were 4yz, so that a human decides rather than a retry loop (a follow-up has
    one recipient, for which this cannot arise). If all are refused with 4yz
    only, the result is ``RETRY``.

    Bcc and Resent-Bcc headers are not transmitted. ``BODY=8BITMIME``,
    ``SMTPUTF8`` (for non-ASCII addresses; ``FAILED`` if the server lacks it) and
    ``SIZE`` (RFC 1870, so an oversized message is refused before its body is
    sent) are used when the server offers them.

    If the task is cancelled after the message body was handed to the
    connection, the outcome is unknown: the caller must record it as
    ``UNCERTAIN``.
    """
    settings = account.smtp
    if settings is None:
        result = SendResult(
            SendOutcome.FAILED,
            None,
            f"account {account.name!r} has no [accounts.smtp] section; nothing was sent",
        )
        log.warning("smtp_send", account=account.name, outcome=result.outcome, code=None)
        return result
    attempt = _Attempt(account.name, settings, password)
    result = await attempt.run(msg, mail_from, list(rcpts), token_command)
    result = SendResult(result.outcome, result.code, attempt.clean(result.message))
    emit = log.info if result.outcome is SendOutcome.SENT else log.warning
    emit(
        "smtp_send",
        account=account.name,
        host=settings.host,
        port=settings.effective_port(),
        security=str(settings.security),
        outcome=str(result.outcome),
        code=result.code,
        step=attempt.step,
    )
    return result


def send_message_sync(
    account: AccountSettings,
    password: str,
    msg: EmailMessage,
    *,
    mail_from: str,
    rcpts: Sequence[str],
    token_command: str | None = None,
) -> SendResult:
    """:func:`send_message` for callers without an event loop (the CLI)."""
    return asyncio.run(
        send_message(
            account, password, msg, mail_from=mail_from, rcpts=rcpts, token_command=token_command
        )
    )


def check_login(
    account: AccountSettings, password: str, *, token_command: str | None = None
) -> tuple[bool, str]:
    """Connect, secure the connection and log in as a send would, then QUIT without
    sending anything (``ghostwatch doctor``). Returns (ok, one line for the user)."""
    settings = account.smtp
    if settings is None:
        return False, f"account {account.name!r} has no [accounts.smtp] section"
    attempt = _Attempt(account.name, settings, password)
    result = asyncio.run(attempt.run(None, account.address, [], token_command))
    return result.outcome is SendOutcome.SENT, attempt.clean(result.message)


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    # Always verify: a bad certificate is an error, never a silent downgrade.
    ctx = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _data_block(payload: bytes) -> bytes:
    """The bytes that follow a 354 reply: CRLF lines, leading dots doubled, and
    the end-of-data mark ``.<CRLF>`` (RFC 5321 sections 4.1.1.4 and 4.5.2)."""
    text = _LINE_END.sub(b"\r\n", payload)
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    return _LEADING_DOT.sub(b"..", text) + b".\r\n"


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``exc`` or the first exception it was raised from that is a ``kind``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _os_reason(exc: BaseException) -> str:
    """Say "Connection refused" rather than asyncio's "Connect call failed (...)"."""
    for link in (exc.__cause__, exc.__context__, exc):
        if isinstance(link, OSError) and not isinstance(link, aiosmtplib.SMTPException):
            if link.errno is not None and link.errno > 0:
                return os.strerror(link.errno)
            if link.strerror:  # socket.gaierror: "Name or service not known"
                return link.strerror
    return str(exc) or type(exc).__name__


class _Attempt:
    """One connection's dialogue, and where it stood when it ended."""

    def __init__(self, account: str, settings: SmtpSettings, password: str) -> None:
        self.account = account
        self.settings = settings
        self.password = password
        self.host = settings.host
        self.port = settings.effective_port()
        self.secrets = [password]
        #: The step in progress, for messages and logs ("RCPT TO", "end of data").
        self.step = "connect"
        #: True once the end-of-data mark was handed to the connection.
        self.body_sent = False
        #: False once the dialogue is out of step (timeout, drop): close, no QUIT.
        self.in_step = True
        #: The SASL mechanism tried, for the message on a refused login.
        self.mechanism = ""

    # ---- the dialogue ----------------------------------------------------

    async def run(
        self,
        msg: EmailMessage | None,
        mail_from: str,
        rcpts: list[str],
        token_command: str | None,
    ) -> SendResult:
        """Send ``msg``; with ``msg=None`` only connect, secure and log in (a check)."""
        try:
            ctx, token = await self._prepare(rcpts if msg is not None else ["-"], token_command)
        except _OutcomeError as stop:
            return stop.result

        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.settings.security is Security.TLS,
            # STARTTLS is done by hand below, so a server without it is refused.
            start_tls=False,
            tls_context=ctx,
            timeout=self.settings.timeout,
        )
        try:
            return await self._dialogue(client, msg, mail_from, rcpts, token)
        except _OutcomeError as stop:
            return stop.result
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            return self._classify(exc)
        except Exception:
            if not self.body_sent:
                raise
            # Whatever broke, the message may be out: never let the caller resend.
            log.exception("smtp_unexpected_error", host=self.host, step=self.step)
            self.in_step = False
            return SendResult(
                SendOutcome.UNCERTAIN,
                None,
                f"internal error after the message was sent to {self.host}; it may have "
                "been delivered, do not resend without checking",
            )
        finally:
            await self._close(client)

    async def _prepare(
        self, rcpts: list[str], token_command: str | None
    ) -> tuple[ssl.SSLContext, str | None]:
        """Everything that needs no connection: checks, the access token, TLS setup."""
        if not rcpts:
            raise _OutcomeError(SendOutcome.FAILED, None, "no recipients; nothing was sent")
        if self.settings.security is Security.NONE and not is_loopback(self.host):
            raise _OutcomeError(
                SendOutcome.FAILED,
                None,
                f'security = "none" is only allowed for a loopback host, not {self.host}',
            )
        token = None
        if token_command is not None:
            self.step = "token_command"
            token = await self._access_token(token_command)
        try:
            ctx = _tls_context(self.settings)
        except (OSError, ssl.SSLError) as exc:
            raise _OutcomeError(
                SendOutcome.FAILED,
                None,
                f"ca_file {self.settings.ca_file}: {getattr(exc, 'strerror', None) or exc}",
            ) from exc
        return ctx, token

    async def _dialogue(
        self,
        client: aiosmtplib.SMTP,
        msg: EmailMessage | None,
        mail_from: str,
        rcpts: list[str],
        token: str | None,
    ) -> SendResult:
        self.step = "connect"
        await client.connect()
        self.step = "EHLO"
        await client.ehlo()
        if self.settings.security is Security.STARTTLS:
            if not client.supports_extension("starttls"):
                raise _OutcomeError(
                    SendOutcome.FAILED,
                    None,
                    f'{self.host}:{self.port} does not offer STARTTLS (security = "starttls"); '
                    "refusing to send the login or the message unencrypted; nothing was sent",
                )
            self.step = "STARTTLS"
            await client.starttls()
            # RFC 3207 section 4.2: forget what was learnt before TLS, ask again.
            self.step = "EHLO"
            await client.ehlo()

        self.step = "AUTH"
        await self._authenticate(client, token)
        if msg is None:
            return SendResult(
                SendOutcome.SENT,
                None,
                f"{self.host}:{self.port} ({self.settings.security.value}): accepted us; "
                "nothing sent",
            )

        utf8 = not (mail_from + "".join(rcpts)).isascii()
        if utf8 and not client.supports_extension("smtputf8"):
            raise _OutcomeError(
                SendOutcome.FAILED,
                None,
                f"{self.host} does not support SMTPUTF8, needed for a non-ASCII address; "
                "nothing was sent",
            )
        eight_bit = client.supports_extension("8bitmime")
        payload = flatten_message(msg, utf8=utf8, cte_type="8bit" if eight_bit else "7bit")
        options = []
        if eight_bit:
            options.append("BODY=8BITMIME")
        if utf8:
            options.append("SMTPUTF8")
        if client.supports_extension("size"):
            options.append(f"SIZE={len(payload)}")
        encoding = "utf-8" if utf8 else "ascii"

        self.step = "MAIL FROM"
        await client.mail(mail_from, options=options, encoding=encoding)

        self.step = "RCPT TO"
        refused: list[aiosmtplib.SMTPRecipientRefused] = []
        for rcpt in rcpts:
            try:
                await client.rcpt(rcpt, encoding=encoding)
            except aiosmtplib.SMTPRecipientRefused as exc:
                refused.append(exc)
        if refused:
            raise self._refused_recipients(refused, len(rcpts))

        self.step = "DATA"
        reply = await client.execute_command(b"DATA")
        if reply.code != 354:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        protocol = client.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("connection lost after DATA")

        # From here on the server may accept the message at any moment, and a lost
        # reply no longer means "not sent". write() either raises before handing
        # anything over, or hands over the whole block.
        self.step = "end of data"
        protocol.write(_data_block(payload))
        self.body_sent = True
        failpoints.hit("after_data")
        final = await protocol.read_response(timeout=self.settings.timeout)
        if 200 <= final.code < 300:
            return SendResult(
                SendOutcome.SENT,
                final.code,
                f"accepted by {self.host}: {final.code} {final.message}",
            )
        if 400 <= final.code < 600:
            raise aiosmtplib.SMTPDataError(final.code, final.message)
        self.in_step = False
        return SendResult(
            SendOutcome.UNCERTAIN,
            final.code,
            f"unexpected reply {final.code} {final.message} from {self.host} after the "
            "message was sent; it may have been delivered, do not resend without checking",
        )

    async def _authenticate(self, client: aiosmtplib.SMTP, token: str | None) -> None:
        user = self.settings.username
        offered = " ".join(client.server_auth_methods).upper() or "none"
        if token is not None:
            if "xoauth2" not in client.server_auth_methods:
                raise _OutcomeError(
                    SendOutcome.FAILED,
                    None,
                    f"{self.host} does not offer AUTH XOAUTH2, needed for token_command "
                    f"(offers: {offered}); nothing was sent",
                )
            # https://developers.google.com/gmail/imap/xoauth2-protocol
            self.mechanism = "XOAUTH2"
            sasl = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
            encoded = base64.b64encode(sasl)
            self.secrets.append(encoded.decode("ascii"))
            reply = await client.execute_command(b"AUTH", b"XOAUTH2", encoded)
            if reply.code == 334:
                # A failure comes as a challenge holding a JSON error (RFC 7628
                # section 3.2.3); an empty response ends the exchange with the real code.
                reply = await client.execute_command(b"")
            if reply.code != 235:
                raise aiosmtplib.SMTPAuthenticationError(reply.code, reply.message)
            return
        if not client.supports_extension("auth"):
            if self.settings.security is Security.NONE:
                # A relay on loopback that trusts its local clients.
                return
            raise _OutcomeError(
                SendOutcome.FAILED,
                None,
                f"{self.host} does not offer SMTP AUTH, so ghostwatch cannot log in as "
                f"{user}; nothing was sent",
            )
        self.mechanism = "password"
        plain = f"\0{user}\0{self.password}".encode()
        self.secrets.append(base64.b64encode(plain).decode("ascii"))
        await client.login(user, self.password)

    async def _access_token(self, command: str) -> str:
        where = f"{self.account}/smtp"
        try:
            token = await asyncio.to_thread(run_secret_command, command, where, "token_command")
        except CredentialError as exc:
            raise _OutcomeError(SendOutcome.FAILED, None, f"{exc}; nothing was sent") from None
        return token.strip()

    async def _close(self, client: aiosmtplib.SMTP) -> None:
        """QUIT if the dialogue is still in step; ignore whatever goes wrong (the
        outcome is already decided, and after a 250 the message is the server's)."""
        try:
            if self.in_step and client.is_connected:
                await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            client.close()

    # ---- outcomes ----------------------------------------------------------

    def _refused_recipients(
        self, refused: list[aiosmtplib.SMTPRecipientRefused], total: int
    ) -> _OutcomeError:
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in refused)
        if len(refused) == total and all(400 <= r.code < 500 for r in refused):
            return _OutcomeError(
                SendOutcome.RETRY,
                refused[0].code,
                f"{self.host} temporarily refused the recipient{'s' if total > 1 else ''} "
                f"({detail}); nothing was sent, try again later",
            )
        permanent = [r for r in refused if r.code >= 500]
        code = (permanent or refused)[0].code
        return _OutcomeError(
            SendOutcome.FAILED,
            code,
            f"{self.host} refused {len(refused)} of {total} recipient"
            f"{'s' if total > 1 else ''} ({detail}); nothing was sent to anyone",
        )

    def _classify(self, exc: BaseException) -> SendResult:
        """Map what went wrong, and at which step, to an outcome."""
        cert = _cause(exc, ssl.SSLCertVerificationError)
        if isinstance(cert, ssl.SSLCertVerificationError):
            self.in_step = False
            return SendResult(
                SendOutcome.FAILED,
                None,
                f"TLS certificate for {self.host} not trusted: "
                f"{cert.verify_message or cert.reason}; nothing was sent (a private CA "
                "goes in ca_file)",
            )
        tls = _cause(exc, ssl.SSLError)
        if isinstance(tls, ssl.SSLError):
            self.in_step = False
            return SendResult(
                SendOutcome.FAILED,
                None,
                f"TLS with {self.host}:{self.port} failed: {tls.reason or tls}; nothing was sent",
            )

        if isinstance(exc, aiosmtplib.SMTPResponseException) and 400 <= exc.code < 600:
            return self._reply(exc.code, exc.message)

        if self.body_sent:
            self.in_step = False
            return SendResult(
                SendOutcome.UNCERTAIN,
                None,
                f"{self._what_happened(exc)} after the message was sent to {self.host}, "
                "before it confirmed receipt; it may have been delivered, do not resend "
                "without checking",
            )
        if isinstance(exc, TimeoutError | OSError | aiosmtplib.SMTPResponseException):
            self.in_step = False
            return SendResult(
                SendOutcome.RETRY,
                None,
                f"{self._what_happened(exc)} at {self.step}; nothing was sent, try again later",
            )
        if isinstance(exc, ValueError):
            return SendResult(SendOutcome.FAILED, None, f"{exc}; nothing was sent")
        message = exc.message if isinstance(exc, aiosmtplib.SMTPException) else str(exc)
        return SendResult(
            SendOutcome.FAILED, None, f"{self.host} at {self.step}: {message}; nothing was sent"
        )

    def _what_happened(self, exc: BaseException) -> str:
        if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError):
            return f"no answer from {self.host}:{self.port} within {self.settings.timeout:g}s"
        if isinstance(exc, TimeoutError):
            return f"no reply from {self.host} within {self.settings.timeout:g}s"
        if isinstance(exc, aiosmtplib.SMTPConnectError):
            return f"cannot connect to {self.host}:{self.port} ({_os_reason(exc)})"
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return f"unreadable reply from {self.host} ({exc.message})"
        return f"connection to {self.host} lost"

    def _reply(self, code: int, text: str) -> SendResult:
        """A 4yz or 5yz reply (RFC 5321 section 4.2.1) to ``self.step``."""
        reply = f"{code} {text}"
        if self.step == "AUTH" and code in (534, 535):
            why = (
                "the access token from token_command was rejected"
                if self.mechanism == "XOAUTH2"
                else "wrong password or an app password is needed"
            )
            return SendResult(
                SendOutcome.FAILED,
                code,
                f"login refused for {self.settings.username} ({why}): {reply}",
            )
        if 400 <= code < 500 and self.body_sent:
            # RFC 5321 section 4.2.5: after a 4yz here the server must not deliver it.
            return SendResult(
                SendOutcome.RETRY,
                code,
                f"{self.host} did not accept the message for now: {reply}; try again later",
            )
        if 400 <= code < 500:
            return SendResult(
                SendOutcome.RETRY,
                code,
                f"{self.host} temporarily refused {self.step}: {reply}; nothing was sent, "
                "try again later",
            )
        if self.body_sent:
            return SendResult(
                SendOutcome.FAILED, code, f"{self.host} rejected the message: {reply}"
            )
        return SendResult(
            SendOutcome.FAILED, code, f"{self.host} refused {self.step}: {reply}; nothing was sent"
        )

    def clean(self, text: str) -> str:
        """One line, without any secret, of bounded length."""
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        text = " ".join(text.split())
        if len(text) > _MAX_MESSAGE_LEN:
            text = text[: _MAX_MESSAGE_LEN - 3] + "..."
        return text
