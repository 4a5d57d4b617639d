"""The send path: due steps become drafts in the outbox; drafts that may go, go once.

Two passes, both shells around pure decisions:

:func:`queue_due`
    Plans every silent thread (:mod:`ghostwatch.engine`), renders each step that
    writes to the client and is due within ``[sending] queue_ahead_hours``, and
    writes it to the outbox (:func:`ghostwatch.outbox.enqueue`: once per step).
    Queued drafts whose thread no longer calls for them are cancelled.

:func:`send_pending`
    Turns rows left ``sending`` by a crash into ``uncertain`` and settles them
    from the mailbox when their Message-ID shows up in Sent (or a reply quotes
    it). Then, for each draft that may go (approved, or ``mode = "auto"`` with
    ``auto_send`` on), in slot order: re-sync the mailbox and re-judge the thread
    (a reply since queueing cancels it), check the send window and the caps
    (:mod:`ghostwatch.dispatch`), claim the row (committed before SMTP), send,
    copy to Sent, and record the outcome. Anything unclear holds the draft back:
    ghostwatch would rather not send than send twice or late.
"""

from __future__ import annotations

import email.policy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import structlog
from imapclient.exceptions import IMAPClientError
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ghostwatch import dispatch, engine, failpoints, outbox
from ghostwatch.businesstime import Calendar
from ghostwatch.classify import Kind
from ghostwatch.clock import Clock
from ghostwatch.compose import (
    Attachment,
    ComposeError,
    ThreadContext,
    compose,
    make_message_id,
    reply_subject,
)
from ghostwatch.config import AccountSettings, SaveToSent, Settings
from ghostwatch.credentials import resolve_password
from ghostwatch.errors import GhostwatchError
from ghostwatch.facts import PlannedStep, ThreadFacts
from ghostwatch.gather import gather, name_of, silence_anchor
from ghostwatch.imap import ImapSession
from ghostwatch.message import Direction
from ghostwatch.outbox import Draft, State
from ghostwatch.policy import PolicySettings, Step
from ghostwatch.preview import profile_dir, template_vars
from ghostwatch.smtp import SendOutcome, send_message_sync
from ghostwatch.store import Folder, MessageRow, OutboxRow, StepLog
from ghostwatch.templates import render

__all__ = ["Outcome", "Report", "queue_due", "send_pending", "settle", "thread_context"]

log = structlog.get_logger("ghostwatch.sender")

#: Steps that write to the client; tasks are for the user (the digest).
_SENDING_ACTIONS = frozenset({"send", "pause"})
_PENDING = (State.QUEUED.value, State.APPROVED.value)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one pass did with one outbox row, in words for the user."""

    row_id: int
    thread_id: str
    to: str
    subject: str
    step: str
    what: str  # queued, sent, would-send, held, cancelled, retry, failed, uncertain, settled
    detail: str


@dataclass
class Report:
    outcomes: list[Outcome]
    #: The facts the pass planned from (thread id -> facts), for the caller to reuse.
    facts: dict[str, ThreadFacts] = field(default_factory=dict)

    def of(self, what: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.what == what]


def _outcome(row: OutboxRow, what: str, detail: str) -> Outcome:
    subject = reply_subject(row.subject)
    return Outcome(row.id, row.thread_id, row.to_addr, subject, row.step, what, detail)


# --- queueing ---------------------------------------------------------------------------


def _policy_step(policy: PolicySettings, planned: PlannedStep) -> Step | None:
    steps = policy.policies[planned.stage].steps if planned.stage in policy.policies else []
    if 0 <= planned.index < len(steps) and steps[planned.index].name == planned.step:
        return steps[planned.index]
    return None


def client_key(policy: PolicySettings, facts: ThreadFacts, to_addr: str) -> str:
    """Who the per-client daily cap counts: the configured client, else the address."""
    client = policy.client_for(facts.verdict.counterparts)
    return f"client:{client.name}" if client is not None else to_addr.lower()


def thread_context(db: Session, account: str, facts: ThreadFacts) -> ThreadContext:
    """The thread's ids in date order, and the message to answer: the latest one that
    a person wrote (never a bounce or an auto-reply)."""
    rows = db.execute(
        select(MessageRow.message_id, MessageRow.kind, MessageRow.date)
        .where(MessageRow.account == account, MessageRow.thread_id == facts.thread_id)
        .order_by(MessageRow.date)
    ).all()
    ids: list[str] = []
    parent = ""
    for message_id, kind, _date in rows:
        if not message_id or message_id in ids:
            continue
        ids.append(message_id)
        if kind not in (Kind.BOUNCE.value, Kind.AUTO_REPLY.value):
            parent = message_id
    if not parent:
        raise GhostwatchError(f"thread {facts.thread_id}: no message with a Message-ID to answer")
    to = facts.counterpart_last_wrote_from or facts.verdict.counterpart
    if not to:
        raise GhostwatchError(f"thread {facts.thread_id}: no address to write to")
    return ThreadContext(
        subject=facts.subject, message_ids=tuple(ids), reply_to_message_id=parent, to_address=to
    )


def _draft(  # noqa: PLR0917 - one call site, all of it context
    db: Session,
    settings: Settings,
    account: AccountSettings,
    facts: ThreadFacts,
    planned: PlannedStep,
    now: datetime,
) -> Draft:
    policy = settings.policy
    step = _policy_step(policy, planned)
    anchor = silence_anchor(facts.verdict)
    if step is None or anchor is None or not planned.template:
        raise GhostwatchError(f"thread {facts.thread_id}: step {planned.step!r} cannot be drafted")
    vars_ = template_vars(
        settings, account, facts, step, now, counterpart_name=name_of(db, account, facts)
    )
    rendered = render(planned.template, vars_, vars_.locale, templates_dir=profile_dir(settings))
    ctx = thread_context(db, account.name, facts)
    attachment = None
    if planned.attach_invoice:
        if facts.invoice is None or not facts.invoice.attachment:
            raise GhostwatchError(
                f"thread {facts.thread_id}: step {planned.step!r} attaches the invoice, but no "
                f"file is on record: ghostwatch track {facts.thread_id} --attach FILE.pdf"
            )
        attachment = facts.invoice.attachment
    message_id = make_message_id(account.address.rpartition("@")[2])
    # Build it once now: a value compose refuses (a header injection in a name or a
    # subject) is refused at queueing, before anyone approves it.
    compose(
        account_address=account.address,
        display_name=account.display_name,
        thread=ctx,
        text=rendered.text,
        html=rendered.html,
        message_id=message_id,
        now=now,
    )
    return Draft(
        account=account.name,
        thread_id=facts.thread_id,
        anchor=anchor,
        step=planned.step,
        mode=planned.mode,
        to_addr=ctx.to_address,
        subject=ctx.subject,
        message_id=message_id,
        body_text=rendered.text,
        body_html=rendered.html,
        attachment=attachment,
        due_at=planned.due_at,
        client=client_key(policy, facts, ctx.to_address),
        in_reply_to=ctx.reply_to_message_id,
        references=" ".join(ctx.message_ids),
        locale=vars_.locale,
        reason=planned.reason,
    )


def queue_due(db: Session, settings: Settings, account: AccountSettings, now: datetime) -> Report:
    """Write every step due within ``queue_ahead_hours`` to the outbox; cancel queued
    drafts that their thread no longer calls for. Commits."""
    policy = settings.policy
    facts = {f.thread_id: f for f in gather(db, account, policy)}
    outcomes = _cancel_stale(db, account, policy, facts, now)
    horizon = now + timedelta(hours=settings.sending.queue_ahead_hours)
    for planned in engine.plan(list(facts.values()), policy, now, until=horizon):
        if planned.action not in _SENDING_ACTIONS or not planned.template:
            continue
        try:
            draft = _draft(db, settings, account, facts[planned.thread_id], planned, now)
        except GhostwatchError as exc:
            log.warning(
                "draft_refused", thread=planned.thread_id, step=planned.step, error=str(exc)
            )
            outcomes.append(
                Outcome(
                    0,
                    planned.thread_id,
                    planned.counterpart or "?",
                    "",
                    planned.step,
                    "refused",
                    str(exc),
                )
            )
            continue
        row, created = outbox.enqueue(db, draft, now)
        if created:
            db.flush()
            outcomes.append(
                _outcome(row, "queued", f"{planned.mode}; due {planned.due_at:%Y-%m-%d %H:%M %Z}")
            )
    db.commit()
    return Report(outcomes, facts)


@dataclass(frozen=True, slots=True)
class _Verdict:
    """Whether a pending draft is still wanted: its planned step, or why not, and what
    the step log should record when the step was in fact done by the user."""

    planned: PlannedStep | None
    why: str = ""
    logged_as: str | None = None


def _still_due(
    db: Session, row: OutboxRow, facts: ThreadFacts | None, policy: PolicySettings, now: datetime
) -> _Verdict:
    """Whether the thread still calls for this draft (re-judged from the store)."""
    if _seen_in_mailbox(db, row.account, row.message_id):
        # The user sent this very draft from their mail client (the Drafts copy).
        return _Verdict(None, "you sent this draft yourself from your mail client", "sent")
    if facts is None or not facts.verdict.awaiting:
        return _Verdict(None, "the thread no longer awaits a reply (answered, or closed)")
    if silence_anchor(facts.verdict) != row.anchor:
        return _Verdict(None, "the silence this draft was for has ended")
    wrote = facts.verdict.awaiting_since
    if wrote is not None and wrote > row.created_at:
        # The user wrote to them again after this draft was made: that message is
        # the follow-up; sending this one too would be a second nudge.
        return _Verdict(
            None,
            f"you wrote to them yourself on {wrote:%a %d %b %H:%M %Z} after this draft was "
            "made; the step counts as done",
            "done",
        )
    planned = engine.next_step(facts, policy, now)
    if planned is None or planned.step != row.step:
        return _Verdict(None, engine.explain(facts, policy, now).status)
    return _Verdict(planned)


def _cancel_stale(
    db: Session,
    account: AccountSettings,
    policy: PolicySettings,
    facts: dict[str, ThreadFacts],
    now: datetime,
) -> list[Outcome]:
    out = []
    pending = db.scalars(
        select(OutboxRow).where(OutboxRow.account == account.name, OutboxRow.state.in_(_PENDING))
    )
    for row in list(pending):
        verdict = _still_due(db, row, facts.get(row.thread_id), policy, now)
        if verdict.planned is None:
            out.append(_cancel(db, row, verdict, now))
    return out


def _cancel(db: Session, row: OutboxRow, verdict: _Verdict, now: datetime) -> Outcome:
    why = verdict.why
    outbox.move(db, row.id, State.CANCELLED, now, expect=State(row.state), error=why)
    if verdict.logged_as is not None:
        log_step(db, row, verdict.logged_as, now)
    log.info("draft_cancelled", row=row.id, thread=row.thread_id, step=row.step, why=why)
    return _outcome(row, "cancelled", why)


# --- settling uncertain sends ------------------------------------------------------------


def _seen_in_mailbox(db: Session, account: str, message_id: str) -> bool:
    """Proof that our message went out: its Message-ID in a Sent folder, or a message
    from someone else answering or quoting it. A copy anywhere else proves nothing (a
    Drafts folder or Gmail's All Mail holds unsent drafts too)."""
    sent_folders = select(Folder.id).where(Folder.account == account, Folder.role == "sent")
    found = db.scalar(
        select(MessageRow.id)
        .where(
            MessageRow.account == account,
            or_(
                and_(
                    MessageRow.message_id == message_id,
                    MessageRow.folder_id.in_(sent_folders),
                ),
                and_(
                    MessageRow.direction == Direction.INCOMING.value,
                    or_(
                        MessageRow.in_reply_to == message_id,
                        MessageRow.references.contains(message_id, autoescape=True),
                    ),
                ),
            ),
        )
        .limit(1)
    )
    return found is not None


def log_step(db: Session, row: OutboxRow, outcome: str, at: datetime) -> None:
    try:
        with db.begin_nested():
            db.add(StepLog(account=row.account, thread_id=row.thread_id, anchor=row.anchor,
                           step=row.step, outcome=outcome, at=at))  # fmt: skip
    except IntegrityError:
        pass  # already recorded (by the user, or an earlier settle)


def settle(db: Session, account: AccountSettings, now: datetime) -> list[Outcome]:
    """Rows a crash left ``sending`` become ``uncertain``; an uncertain row whose
    Message-ID is in the synced mailbox is settled as sent. The rest wait for the
    user (``ghostwatch settle``); they are never resent on ghostwatch's own. Commits."""
    out = []
    for row in outbox.recover(db, account.name, now):
        out.append(_outcome(row, "uncertain", "interrupted while sending"))
    uncertain = db.scalars(
        select(OutboxRow).where(
            OutboxRow.account == account.name, OutboxRow.state == State.UNCERTAIN.value
        )
    )
    for row in list(uncertain):
        if _seen_in_mailbox(db, account.name, row.message_id):
            outbox.move(db, row.id, State.SENT, now, expect=State.UNCERTAIN,
                        error="settled: found in the mailbox")  # fmt: skip
            log_step(db, row, "sent", now)
            out.append(_outcome(row, "settled", "found in the mailbox: it went out"))
    db.commit()
    return out


# --- sending -----------------------------------------------------------------------------


def _limits(settings: Settings) -> dispatch.Limits:
    s = settings.sending
    return dispatch.Limits(
        hourly_cap=s.hourly_cap,
        per_client_daily=s.per_client_daily,
        spread_minutes=s.spread_minutes,
        auto_send=s.auto_send,
    )


def _candidate(row: OutboxRow) -> dispatch.Candidate:
    return dispatch.Candidate(
        row_id=row.id,
        message_id=row.message_id,
        state=row.state,
        mode=row.mode,
        client=row.client or row.to_addr,
        due_at=row.due_at,
        next_attempt_at=row.next_attempt_at,
    )


def _recent_sends(db: Session, account: str, now: datetime) -> list[dispatch.SentRecord]:
    rows = db.execute(
        select(OutboxRow.client, OutboxRow.to_addr, OutboxRow.sent_at).where(
            OutboxRow.account == account,
            OutboxRow.state == State.SENT.value,
            OutboxRow.sent_at > now - timedelta(days=2),
        )
    )
    return [dispatch.SentRecord(c or t, s) for c, t, s in rows if s is not None]


def build_message(row: OutboxRow, account: AccountSettings, now: datetime) -> EmailMessage:
    """The draft as the message that goes out (and into Sent); raises ComposeError or
    OSError (the invoice file cannot be read)."""
    attachments = []
    if row.attachment:
        path = Path(row.attachment).expanduser()
        attachments.append(Attachment(filename=path.name, content=path.read_bytes()))
    return compose(
        account_address=account.address,
        display_name=account.display_name,
        thread=ThreadContext(
            subject=row.subject,
            message_ids=tuple(row.references.split()),
            reply_to_message_id=row.in_reply_to,
            to_address=row.to_addr,
            to_name=row.to_name,
        ),
        text=row.body_text,
        html=row.body_html,
        attachments=attachments,
        message_id=row.message_id,
        now=now,
    )


def _save_to_sent(account: AccountSettings, settings: Settings, raw: bytes, when: datetime) -> str:
    """APPEND the copy to Sent, per ``save_to_sent``; returns a note ("" when done)."""
    from ghostwatch.imap import connect

    mode = settings.sending.save_to_sent
    if mode is SaveToSent.NEVER:
        return ""
    try:
        session = connect(account, resolve_password(account.imap, f"{account.name}/imap"))
    except GhostwatchError as exc:
        return f"sent, but not copied to Sent: {exc}"
    try:
        if mode is SaveToSent.AUTO and session.gmail:
            return ""  # Gmail files what its SMTP server sent by itself
        sent = session.discover_folders().get("sent")
        if sent is None:
            return "sent, but no Sent folder was found to copy it to"
        session.append(sent, raw, when)
    except (OSError, IMAPClientError, GhostwatchError) as exc:
        return f"sent, but the copy to Sent failed: {exc}"
    else:
        return ""
    finally:
        session.logout()


def _drafts_folder(session: ImapSession) -> str:
    folder = session.discover_folders().get("drafts")
    if folder is None:
        raise GhostwatchError("no Drafts folder found (SPECIAL-USE \\Drafts or one named Drafts)")
    return folder


def place_drafts(sessions: sessionmaker[Session], account: AccountSettings, now: datetime) -> str:
    """Copy queued drafts not yet there to the IMAP Drafts folder; "" or a note."""
    from ghostwatch.imap import connect

    with sessions() as db:
        rows = list(
            db.scalars(
                select(OutboxRow).where(
                    OutboxRow.account == account.name,
                    OutboxRow.state.in_(_PENDING),
                    OutboxRow.in_drafts.is_(False),
                )
            )
        )
        if not rows:
            return ""
        try:
            session = connect(account, resolve_password(account.imap, f"{account.name}/imap"))
        except GhostwatchError as exc:
            return f"drafts not copied to Drafts: {exc}"
        try:
            folder = _drafts_folder(session)
            for row in rows:
                raw = build_message(row, account, now).as_bytes(policy=email.policy.SMTP)
                session.append_draft(folder, raw, now)
                row.in_drafts = True
                db.commit()
        except (OSError, IMAPClientError, GhostwatchError, ComposeError) as exc:
            return f"drafts not all copied to Drafts: {exc}"
        finally:
            session.logout()
    return ""


def remove_drafts(sessions: sessionmaker[Session], account: AccountSettings,
                  rows: list[OutboxRow]) -> str:  # fmt: skip
    """Remove these rows' copies from the Drafts folder; "" or what went wrong."""
    from ghostwatch.imap import connect

    rows = [r for r in rows if r.in_drafts]
    if not rows:
        return ""
    try:
        session = connect(account, resolve_password(account.imap, f"{account.name}/imap"))
    except GhostwatchError as exc:
        return str(exc)
    try:
        session.delete_by_message_id(_drafts_folder(session), [r.message_id for r in rows])
    except (OSError, IMAPClientError, GhostwatchError) as exc:
        return str(exc)
    finally:
        session.logout()
    with sessions() as db:
        for row in rows:
            stored = db.get(OutboxRow, row.id)
            if stored is not None:
                stored.in_drafts = False
        db.commit()
    return ""


def _tidy_drafts(sessions: sessionmaker[Session], account: AccountSettings) -> str:
    """Copies in Drafts of rows that will never be sent from there: remove them."""
    with sessions() as db:
        done = list(
            db.scalars(
                select(OutboxRow).where(
                    OutboxRow.account == account.name,
                    OutboxRow.in_drafts.is_(True),
                    OutboxRow.state.not_in(_PENDING),
                )
            )
        )
    return remove_drafts(sessions, account, done)


def _send_one(
    sessions: sessionmaker[Session],
    settings: Settings,
    account: AccountSettings,
    row: OutboxRow,
    now: datetime,
) -> Outcome:
    with sessions() as db:
        if row.state == State.QUEUED.value:
            # An auto step, let through by auto_send: recorded as approved first.
            outbox.move(db, row.id, State.APPROVED, now, expect=State.QUEUED)
            db.commit()
        try:
            msg = build_message(row, account, now)
        except (ComposeError, OSError) as exc:
            why = f"cannot build the message: {exc}"
            outbox.move(db, row.id, State.FAILED, now, expect=State.APPROVED, error=why)
            db.commit()
            return _outcome(row, "failed", why)
        if account.smtp is None:
            why = f"account {account.name!r} has no [accounts.smtp] section: cannot send"
            outbox.move(db, row.id, State.FAILED, now, expect=State.APPROVED, error=why)
            db.commit()
            return _outcome(row, "failed", why)
        token_command = account.smtp.token_command
        try:
            password = (
                "" if token_command else resolve_password(account.smtp, f"{account.name}/smtp")
            )
        except GhostwatchError as exc:
            return _outcome(row, "held", f"SMTP password unavailable: {exc}")
        if row.in_drafts:
            # Once ghostwatch sends it, the copy in Drafts must not be sendable too.
            problem = remove_drafts(sessions, account, [row])
            if problem:
                return _outcome(
                    row, "held", f"not sent: its copy in Drafts could not be removed ({problem})"
                )
        outbox.claim(db, row.id, now)  # committed: from here a crash means "uncertain"
        failpoints.hit("before_smtp")
        raw = msg.as_bytes(policy=email.policy.SMTP)
        result = send_message_sync(account, password, msg, mail_from=account.address,
                                   rcpts=[row.to_addr], token_command=token_command)  # fmt: skip
        if result.outcome is SendOutcome.SENT:
            failpoints.hit("after_250")
            note = _save_to_sent(account, settings, raw, now)
            failpoints.hit("after_append")
            failpoints.hit("before_commit")
            outbox.move(db, row.id, State.SENT, now, expect=State.SENDING, error=note or None)
            log_step(db, row, "sent", now)
            db.commit()
            log.info("follow_up_sent", row=row.id, thread=row.thread_id, step=row.step)
            return _outcome(row, "sent", result.message + (f" ({note})" if note else ""))
        if result.outcome is SendOutcome.RETRY:
            attempts = row.attempts + 1
            if attempts >= settings.sending.max_attempts:
                why = f"{result.message} (gave up after {attempts} attempts)"
                outbox.move(db, row.id, State.FAILED, now, expect=State.SENDING, error=why)
                db.commit()
                return _outcome(row, "failed", why)
            delay = timedelta(minutes=settings.sending.retry_minutes * 2 ** (attempts - 1))
            outbox.move(db, row.id, State.APPROVED, now, expect=State.SENDING,
                        error=result.message, retry_at=now + delay)  # fmt: skip
            db.commit()
            return _outcome(row, "retry", f"{result.message}; next try at {now + delay:%H:%M %Z}")
        target = State.FAILED if result.outcome is SendOutcome.FAILED else State.UNCERTAIN
        outbox.move(db, row.id, target, now, expect=State.SENDING, error=result.message)
        db.commit()
        return _outcome(row, target.value, result.message)


def send_pending(
    sessions: sessionmaker[Session],
    settings: Settings,
    account: AccountSettings,
    clock: Clock,
    *,
    dry_run: bool = False,
    resync: Callable[[], None] | None = None,
    fresh: bool = False,
) -> Report:
    """One send pass over the account's outbox; see the module docstring.

    ``resync`` brings the store up to date with the mailbox (a sync of the account);
    it runs before settling (unless ``fresh``: the caller has just synced) and again
    right before each message goes out. If it fails, nothing is sent in this pass.
    """
    outcomes: list[Outcome] = []
    policy = settings.policy
    dry_run = dry_run or settings.sending.dry_run
    limits = _limits(settings)
    try:
        if resync is not None and not fresh:
            resync()
    except GhostwatchError as exc:
        return Report([Outcome(0, "", "", "", "", "held", f"cannot re-check the mailbox: {exc}")])
    with sessions() as db:
        outcomes += settle(db, account, clock.now())
        queued = queue_due(db, settings, account, clock.now())
        outcomes += queued.outcomes
        pending = list(
            db.scalars(
                select(OutboxRow).where(
                    OutboxRow.account == account.name, OutboxRow.state.in_(_PENDING)
                )
            )
        )
    if settings.sending.drafts_folder and not dry_run:
        note = place_drafts(sessions, account, clock.now())
        if note:
            outcomes.append(Outcome(0, "", "", "", "", "note", note))
    # Each client's calendar, from the facts queueing just gathered (a pending row whose
    # thread is no longer awaiting was cancelled there).
    calendars = {
        r.id: engine.calendar_for(queued.facts[r.thread_id], policy)
        if r.thread_id in queued.facts
        else Calendar()
        for r in pending
    }
    cands = {r.id: r for r in pending}
    ordered = dispatch.order(
        [_candidate(r) for r in pending], lambda c: calendars[c.row_id], limits
    )
    first = True
    for cand in ordered:
        row = cands[cand.row_id]
        now = clock.now()
        with sessions() as db:
            decision = dispatch.decide(
                cand, now, calendars[row.id], limits, _recent_sends(db, account.name, now)
            )
        if isinstance(decision, dispatch.Hold):
            outcomes.append(_outcome(row, "held", decision.reason))
            continue
        if not first and resync is not None:
            try:
                resync()
            except GhostwatchError as exc:
                outcomes.append(_outcome(row, "held", f"cannot re-check the mailbox: {exc}"))
                break
        first = False
        now = clock.now()
        with sessions() as db:
            found = gather(db, account, policy, thread_ids=[row.thread_id])
            verdict = _still_due(db, row, found[0] if found else None, policy, now)
            planned = verdict.planned
            if planned is None:
                outcomes.append(_cancel(db, row, verdict, now))
                db.commit()
                continue
            current = db.get(OutboxRow, row.id)
            if current is None or current.state not in _PENDING:
                continue  # someone else moved it meanwhile
            row = current
            if planned.due_at > now:
                # Postponed since queueing (an out-of-office named a return date).
                row.due_at = planned.due_at
                db.commit()
                outcomes.append(_outcome(row, "held", f"postponed: {planned.reason}"))
                continue
        if dry_run:
            outcomes.append(
                _outcome(row, "would-send", f"dry run: {decision.slot:%a %d %b %H:%M %Z}")
            )
            continue
        outcomes.append(_send_one(sessions, settings, account, row, now))
    if not dry_run:
        note = _tidy_drafts(sessions, account)
        if note:
            outcomes.append(Outcome(0, "", "", "", "", "note", f"Drafts not tidied: {note}"))
    return Report(outcomes)
