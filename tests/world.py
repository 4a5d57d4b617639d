"""A simulated world: one freelancer, many clients, 90 days, the real daemon code.

The owner writes to every client on day 0 (a quote, or an invoice they track as a
payment). Each client then behaves as drawn: answers after some days, never
answers, answers from another of their addresses or through a colleague, is away
with a return date and answers after it, bounces, or (for invoices) pays on time or
late. Every few simulated hours the harness delivers what the clients do through the
real Postfix, runs one daemon pass in-process (:func:`ghostwatch.daemon.run_pass`:
real IMAP sync against Dovecot, real SMTP sends) with the clock set to that instant,
and plays the owner: answers each digest by replying to it ("send all", now and then
"skip N" or "snooze N 2d"), settles uncertain sends by looking at the truth. Faults
are injected along the way: crashes at the send path's failpoints (the pass dies
there, as a SIGKILL would leave it), IMAP outages (Dovecot stopped) and SMTP outages
(the server unreachable).

At the end :meth:`World.figures` checks the invariants over the clients' mailboxes
and the database. Messages the servers would generate themselves (bounces,
out-of-office replies) are written by the harness, with simulated dates: the
servers would date them by the machine's clock.
"""

from __future__ import annotations

import email
import email.policy
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ghostwatch import engine, failpoints
from ghostwatch.clock import FixedClock
from ghostwatch.config import Settings, parse_config
from ghostwatch.daemon import run_pass
from ghostwatch.gather import gather
from ghostwatch.log import configure_logging
from ghostwatch.outbox import State, move
from ghostwatch.sender import log_step
from ghostwatch.store import OutboxRow, ThreadRow, Tracking, open_store
from mailstack import MailStack

START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # a Monday
ROME = ZoneInfo("Europe/Rome")
KINDS = (
    "answers",
    "never",
    "alias",
    "colleague",
    "away_then_answers",
    "bounce",
    "pays_on_time",
    "pays_late",
)


class SimCrash(BaseException):
    """The process dies here (raised at a failpoint; nothing below it runs)."""


@dataclass
class Client:
    kind: str
    address: str
    alias: str
    colleague: str
    subject: str
    original: str  # Message-ID of the owner's first mail
    answer_at: datetime | None = None  # when they answer (human), if ever
    away_until: datetime | None = None
    paid_at: datetime | None = None
    answered: datetime | None = None  # when an answer was actually delivered
    events: list[str] = field(default_factory=list)


@dataclass
class Figures:
    clients: int
    days: int
    passes: int
    crashes: int
    imap_outages: int
    smtp_outages: int
    follow_ups_sent: int
    digests_answered: int
    duplicate_sends: int
    sends_after_a_human_reply: int
    sends_outside_the_window: int
    due_steps_never_taken: int
    drafts_lost: int
    uncertain_for_the_user: int
    seconds: float
    details: list[str] = field(default_factory=list)

    def table(self) -> str:
        rows = [
            ("clients", self.clients, ""),
            ("simulated days", self.days, ""),
            ("daemon passes", self.passes, ""),
            ("crashes injected", self.crashes, ""),
            ("IMAP outages", self.imap_outages, ""),
            ("SMTP outages", self.smtp_outages, ""),
            ("follow-ups delivered", self.follow_ups_sent, ""),
            ("digests answered", self.digests_answered, ""),
            ("duplicate sends", self.duplicate_sends, "must be 0"),
            ("sends after a human reply", self.sends_after_a_human_reply, "must be 0"),
            ("sends outside the send window", self.sends_outside_the_window, "must be 0"),
            ("due steps never taken", self.due_steps_never_taken, "must be 0"),
            ("drafts lost", self.drafts_lost, "must be 0"),
            ("uncertain sends left for the user", self.uncertain_for_the_user, "keep rare"),
            ("wall-clock seconds", round(self.seconds, 1), ""),
        ]
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{name:<{width}}  {value!s:>8}  {note}" for name, value, note in rows)


class World:
    """Build with :meth:`create`, run with :meth:`run`, judge with :meth:`figures`."""

    def __init__(self, stack: MailStack, root: Path, *, clients: int, days: int,
                 seed: int = 7, step_hours: int = 3, faults: bool = True) -> None:  # fmt: skip
        self.stack = stack
        self.root = root
        self.rng = random.Random(seed)
        self.days = days
        self.step = timedelta(hours=step_hours)
        self.faults = faults
        tag = f"{os.getpid()}x{time.monotonic_ns() % 10**8}"
        self.owner = f"owner{tag}@example.test"
        self.owner_pw = "pw-owner"
        stack.add_user(self.owner, self.owner_pw)
        self.clients: list[Client] = []
        for i in range(clients):
            kind = KINDS[i % len(KINDS)]
            domain = f"c{i}x{tag}.client.test"
            address = f"client{i}-{tag}@client.test"
            c = Client(kind, address, f"alt{i}-{tag}@client.test", f"colleague{i}-{tag}@client.test",
                       f"{'Invoice' if kind.startswith('pays') else 'Quote'} {i}: {domain}",
                       f"<start{i}-{tag}@example.test>")  # fmt: skip
            if kind != "bounce":
                stack.add_user(c.address, "pw")
            self.clients.append(c)
        configure_logging("warning", "console")
        self.clock = FixedClock(START)
        self.settings = self._settings()
        self.sessions = open_store(self.settings.database.url)
        self.passes = self.crashes = self.imap_outages = self.smtp_outages = 0
        self.digests_answered = 0
        self.seen_digests: set[str] = set()
        self.settled_by_user = 0
        self._dovecot_down_until: datetime | None = None
        self._smtp_down_until: datetime | None = None

    # -- configuration --------------------------------------------------------------------
    def _config_text(self, smtp_port: int) -> str:
        clients = "\n".join(
            f'[[clients]]\nname = "Client {i}"\naddresses = ["{c.address}", "{c.alias}"]\n'
            f'time_zone = "Europe/Rome"\n'
            for i, c in enumerate(self.clients)
            if c.kind == "alias"
        )
        return f"""
[database]
url = "sqlite:///{self.root / "world.db"}"
[profile]
name = "Olivia Owner"
[defaults]
time_zone = "Europe/Rome"
country = "IT"
[sending]
spread_minutes = 30
queue_ahead_hours = 24
[approval]
times = ["08:30"]
{clients}
[[accounts]]
name = "owner"
address = "{self.owner}"
display_name = "Olivia Owner"
colleague_domains = ["example.test"]
[accounts.imap]
host = "127.0.0.1"
port = {self.stack.imap_port}
security = "none"
username = "{self.owner}"
password = "{self.owner_pw}"
[accounts.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
username = "unused"
password = "unused"
timeout = 10
"""

    def _settings(self, smtp_port: int | None = None) -> Settings:
        path = self.root / "world.toml"
        path.write_text(self._config_text(smtp_port or self.stack.smtp_port))
        path.chmod(0o600)
        return parse_config(path.read_bytes(), path)

    # -- mail helpers -------------------------------------------------------------------------
    def _mail(self, frm: str, to: str, subject: str, when: datetime, *, in_reply_to: str | None,
              body: str, headers: dict[str, str] | None = None,
              msgid: str | None = None) -> EmailMessage:  # fmt: skip
        msg = EmailMessage()
        msg["From"] = frm
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = format_datetime(when)
        msg["Message-ID"] = msgid or make_msgid(domain=frm.rpartition("@")[2] or "x.test")
        if in_reply_to:
            msg["In-Reply-To"] = in_reply_to
            msg["References"] = in_reply_to
        for name, value in (headers or {}).items():
            msg[name] = value
        msg.set_content(body)
        return msg

    def _to_owner(self, msg: EmailMessage) -> None:
        before = len(self.stack.messages(self.owner, "INBOX"))
        self.stack.deliver(parseaddr(str(msg["From"]))[1] or "x@client.test", [self.owner],
                           msg.as_bytes())  # fmt: skip
        self.stack.wait_for_messages(self.owner, "INBOX", before + 1)

    # -- the story ------------------------------------------------------------------------------
    def _day_zero(self) -> None:
        rng = self.rng
        for c in self.clients:
            when = START + timedelta(hours=9 + rng.random() * 6)
            msg = self._mail(self.owner, c.address, c.subject, when, in_reply_to=None,
                             body="Hello,\n\nhere is what we discussed.\n\nOlivia\n",
                             msgid=c.original)  # fmt: skip
            self.stack.append(self.owner, "Sent", msg.as_bytes(), when)
            if c.kind != "bounce":
                self.stack.deliver(self.owner, [c.address], msg.as_bytes())
            if c.kind in ("answers", "alias", "colleague"):
                c.answer_at = START + timedelta(days=rng.uniform(2, 40))
            elif c.kind == "away_then_answers":
                c.away_until = START + timedelta(days=rng.uniform(5, 15))
                c.answer_at = c.away_until + timedelta(days=rng.uniform(1, 10))
            elif c.kind == "pays_on_time":
                c.paid_at = START + timedelta(days=rng.uniform(5, 25))
            elif c.kind == "pays_late":
                c.paid_at = START + timedelta(days=rng.uniform(40, 80))

    def _track_invoices(self) -> None:
        """The owner tells ghostwatch which threads are invoices (as `track` would)."""
        pdf = self.root / "invoice.pdf"
        pdf.write_bytes(b"%PDF-1.4\n% simulated invoice\n%%EOF\n")
        with self.sessions() as db:
            for i, c in enumerate(self.clients):
                if not c.kind.startswith("pays"):
                    continue
                thread = db.scalars(select(ThreadRow).where(ThreadRow.subject == c.subject)).first()
                assert thread is not None, f"no thread for {c.subject}"
                db.add(Tracking(account="owner", thread_id=thread.thread_id, stage="payment",
                                invoice_number=f"2026-{i:03d}", amount="1200.00", currency="EUR",
                                due=(START + timedelta(days=30)).date(), attachment=str(pdf),
                                updated_at=START))  # fmt: skip
            db.commit()

    def _client_events(self, now: datetime) -> None:
        for c in self.clients:
            if (
                c.kind == "bounce"
                and "bounced" not in c.events
                and now >= START + timedelta(hours=16)
            ):
                self._to_owner(self._bounce(c, START + timedelta(hours=16)))
                c.events.append("bounced")
            if c.away_until and "away" not in c.events and now >= START + timedelta(days=1):
                until = c.away_until.astimezone(ROME)
                self._to_owner(self._mail(
                    c.address, self.owner, "Out of office: " + c.subject, START + timedelta(days=1),
                    in_reply_to=c.original,
                    body=f"I am out of the office until {until:%d %B %Y}.\n",
                    headers={"Auto-Submitted": "auto-replied"}))  # fmt: skip
                c.events.append("away")
            if c.answer_at and c.answered is None and now >= c.answer_at:
                frm = {"alias": c.alias, "colleague": c.colleague}.get(c.kind, c.address)
                self._to_owner(self._mail(frm, self.owner, "Re: " + c.subject, c.answer_at,
                                          in_reply_to=c.original,
                                          body="Thanks, let's go ahead.\n"))  # fmt: skip
                c.answered = c.answer_at
            if c.paid_at and "paid" not in c.events and now >= c.paid_at:
                with self.sessions() as db:
                    track = db.scalars(select(Tracking).where(
                        Tracking.invoice_number.is_not(None))).all()  # fmt: skip
                    for t in track:
                        if t.invoice_number == f"2026-{self.clients.index(c):03d}":
                            t.paid_at = c.paid_at  # the owner records the payment (`paid`)
                    db.commit()
                c.events.append("paid")

    def _bounce(self, c: Client, when: datetime) -> EmailMessage:
        """An RFC 3464 report as Postfix writes one, dated by the simulated clock."""
        boundary = "bounce-boundary"
        raw = (
            "From: MAILER-DAEMON@example.test (Mail Delivery System)\r\n"
            f"To: {self.owner}\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\n"
            f"Date: {format_datetime(when)}\r\n"
            f"Message-ID: {make_msgid(domain='example.test')}\r\n"
            "Auto-Submitted: auto-replied\r\n"
            "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"'
            "\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/plain\r\n\r\n"
            "I'm sorry to have to inform you that your message could not\r\n"
            f"be delivered to one or more recipients.\r\n\r\n<{c.address}>: user unknown\r\n"
            f"\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mail.example.test\r\n\r\n"
            f"Final-Recipient: rfc822; {c.address}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
            f"\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"Message-ID: {c.original}\r\nFrom: {self.owner}\r\nTo: {c.address}\r\n"
            f"Subject: {c.subject}\r\n\r\n--{boundary}--\r\n"
        )
        msg = email.message_from_bytes(raw.encode(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg

    def _answer_digests(self, now: datetime) -> None:
        for raw in self.stack.messages(self.owner, "INBOX"):
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            if msg["X-Ghostwatch"] != "digest" or msg["Message-ID"] in self.seen_digests:
                continue
            self.seen_digests.add(str(msg["Message-ID"]))
            assert isinstance(msg, EmailMessage)
            body = msg.get_body(("plain",))
            text = body.get_content() if body is not None else ""
            numbers = [int(line.split(".")[0]) for line in text.splitlines()
                       if line[:1].isdigit() and ". To: " in line]  # fmt: skip
            commands = []
            for n in numbers:
                roll = self.rng.random()
                if roll < 0.08:
                    commands.append(f"skip {n}")
                elif roll < 0.15:
                    commands.append(f"snooze {n} 2d")
                else:
                    commands.append(f"send {n}")
            if not commands:
                continue
            reply = self._mail(self.owner, str(msg["Reply-To"]), "Re: " + str(msg["Subject"]),
                               now + timedelta(minutes=20), in_reply_to=str(msg["Message-ID"]),
                               body="\n".join(commands) + "\n\nOlivia\n")  # fmt: skip
            self._to_owner(reply)
            self.digests_answered += 1

    def _settle_uncertain(self, now: datetime) -> None:
        """The owner, asked "did this go out?", looks at the truth: the client's INBOX."""
        with self.sessions() as db:
            rows = db.scalars(select(OutboxRow).where(OutboxRow.state == State.UNCERTAIN.value))
            for row in list(rows):
                got = any(row.message_id.encode() in raw for raw in self._client_inbox(row.to_addr))
                move(db, row.id, State.SENT if got else State.APPROVED, now,
                     expect=State.UNCERTAIN, error="settled by the owner")  # fmt: skip
                if got:
                    log_step(db, row, "sent", now)
                self.settled_by_user += 1
            db.commit()

    def _client_inbox(self, address: str) -> list[bytes]:
        try:
            return self.stack.messages(address, "INBOX")
        except Exception:
            return []

    # -- faults ---------------------------------------------------------------------------------
    def _faults(self, now: datetime) -> None:
        if not self.faults:
            return
        if self._dovecot_down_until and now >= self._dovecot_down_until:
            self.stack.start_dovecot()
            self._dovecot_down_until = None
        if self._smtp_down_until and now >= self._smtp_down_until:
            self.settings = self._settings()
            self._smtp_down_until = None
        roll = self.rng.random()
        if roll < 0.01 and self._dovecot_down_until is None:
            self.stack.stop_dovecot()
            self._dovecot_down_until = now + self.step * self.rng.randint(1, 3)
            self.imap_outages += 1
        elif roll < 0.03 and self._smtp_down_until is None:
            self.settings = self._settings(smtp_port=1)
            self._smtp_down_until = now + self.step * self.rng.randint(1, 4)
            self.smtp_outages += 1

    def _pass(self) -> None:
        crash_at = None
        if self.faults and self.rng.random() < 0.15:
            crash_at = self.rng.choice(failpoints.POINTS)

        def handler(point: str) -> None:
            if point == crash_at:
                raise SimCrash(point)

        failpoints.handler = handler
        try:
            run_pass(self.sessions, self.settings, self.settings.accounts[0], self.clock,
                     dry_run=False)  # fmt: skip
        except SimCrash:
            self.crashes += 1
        finally:
            failpoints.handler = lambda _point: None
        self.passes += 1

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> Figures:
        started = time.monotonic()
        self._day_zero()
        self.clock.current = START + timedelta(hours=18)
        self._pass()  # first sync: threads exist
        self._track_invoices()
        end = START + timedelta(days=self.days)
        now = START + timedelta(hours=21)
        while now < end:
            self.clock.current = now
            self._faults(now)
            if self._dovecot_down_until is None:
                self._client_events(now)
            self._pass()
            if self._dovecot_down_until is None:
                self._answer_digests(now)
                self._settle_uncertain(now)
            now += self.step
        if self._dovecot_down_until is not None:
            self.stack.start_dovecot()
        self.settings = self._settings()
        self.clock.current = end
        self._pass()
        return self.figures(end, time.monotonic() - started)

    # -- the verdict ---------------------------------------------------------------------------------
    def _follow_ups(self) -> Iterator[tuple[Client, EmailMessage]]:
        for c in self.clients:
            for raw in self._client_inbox(c.address):
                msg = email.message_from_bytes(raw, policy=email.policy.default)
                assert isinstance(msg, EmailMessage)
                if msg["In-Reply-To"] and self.owner in str(msg["From"]):
                    yield c, msg

    def figures(self, end: datetime, seconds: float) -> Figures:
        details: list[str] = []
        follow_ups = list(self._follow_ups())
        ids = Counter(str(m["Message-ID"]) for _c, m in follow_ups)
        duplicates = sum(n - 1 for n in ids.values() if n > 1)
        details += [f"duplicate: {mid} x{n}" for mid, n in ids.items() if n > 1]
        after_reply = 0
        outside = 0
        for c, m in follow_ups:
            sent = email.utils.parsedate_to_datetime(str(m["Date"]))
            if c.answered is not None and sent >= c.answered:
                after_reply += 1
                details.append(f"after reply: {c.address} answered {c.answered}, got {sent}")
            local = sent.astimezone(ROME)
            if local.weekday() >= 5 or not (9 <= local.hour < 17):
                outside += 1
                details.append(f"outside window: {c.address} at {local}")
        with self.sessions() as db:
            facts = gather(db, self.settings.accounts[0], self.settings.policy)
            overdue = [
                s for s in engine.plan(facts, self.settings.policy, end)
                if s.action in ("send", "pause") and s.due_at < end - timedelta(days=3)
            ]  # fmt: skip
            details += [f"never taken: {s.thread_id} {s.step} due {s.due_at}" for s in overdue]
            stuck = list(db.scalars(select(OutboxRow).where(
                OutboxRow.state.in_((State.QUEUED.value, State.APPROVED.value)),
                OutboxRow.due_at < end - timedelta(days=3))))  # fmt: skip
            details += [f"stuck draft: #{r.id} {r.state} {r.step} due {r.due_at}" for r in stuck]
        return Figures(
            clients=len(self.clients), days=self.days, passes=self.passes, crashes=self.crashes,
            imap_outages=self.imap_outages, smtp_outages=self.smtp_outages,
            follow_ups_sent=len(follow_ups), digests_answered=self.digests_answered,
            duplicate_sends=duplicates, sends_after_a_human_reply=after_reply,
            sends_outside_the_window=outside, due_steps_never_taken=len(overdue),
            drafts_lost=len(stuck), uncertain_for_the_user=self.settled_by_user,
            seconds=seconds, details=details,
        )  # fmt: skip
