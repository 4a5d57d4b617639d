"""Approve by replying: the digest goes out, the owner's reply comes back as commands.

The digest (:func:`send_digest`) lists the drafts waiting for approval, numbered, with
tasks and flags. It is written down (its items, and a MAC binding them to a random
token, :mod:`ghostwatch.digesttoken`) before it is sent. The token rides in the
Reply-To plus-address and in the Subject.

A reply (:func:`process_replies`) counts only when all of this holds, checked in this
order, the first failure naming the reason: it is not automated (RFC 3834) and not
one of ghostwatch's own messages; it carries a token; the token belongs to a digest
of this account and its MAC verifies and has not expired; it comes from one of the
owner's addresses; its In-Reply-To/References name that digest's Message-ID; and,
when configured, the topmost Authentication-Results header of the trusted
``authserv_id`` shows the required passes and the reply is also in Sent. Then each
command acts once per item (a unique row per digest item), only on the draft as it
was shown (its body hash) and only for its recorded recipient; ``send`` re-judges
the thread first and cancels the draft if the client has answered meanwhile. One
confirmation goes back to the owner, marked as automated, so it is never taken as
a command.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ghostwatch import engine, outbox
from ghostwatch.clock import Clock
from ghostwatch.compose import make_message_id, reply_subject, safe_header_value
from ghostwatch.config import AccountSettings, Settings
from ghostwatch.credentials import resolve_password
from ghostwatch.digesttoken import (
    Binding,
    body_hash,
    find_token,
    load_or_create_key,
    new_token,
    reply_address,
    seal,
    subject_tag,
    verify,
)
from ghostwatch.errors import GhostwatchError
from ghostwatch.gather import gather
from ghostwatch.outbox import State
from ghostwatch.store import (
    DigestAction,
    DigestRow,
    Folder,
    HandledReply,
    MessageRow,
    OutboxRow,
    Tracking,
)

__all__ = [
    "ReplyOutcome",
    "digest_due",
    "key_path",
    "preview_digest",
    "process_replies",
    "send_digest",
]

log = structlog.get_logger("ghostwatch.approval")

#: Header on every message ghostwatch writes to the owner; such mail is never input.
OWN_HEADER = "X-Ghostwatch"
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_UPCOMING = timedelta(hours=48)
# How far past a digest's validity (token_hours) its replies are still read, to refuse
# them with a reason: a month covers a daemon stopped for weeks and skewed clocks.
_REPLY_LOOKBACK = timedelta(days=30)
_MAX_REPLY_BYTES = 2_000_000


def key_path(settings: Settings) -> Path:
    """The digest HMAC key: ``[approval] key_file``, else ``digest.key`` in the state
    directory ($STATE_DIRECTORY under systemd, else next to a SQLite store, else the
    XDG state directory)."""
    if settings.approval.key_file is not None:
        return settings.approval.key_file.expanduser()
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0]) / "digest.key"
    from sqlalchemy.engine import make_url

    url = make_url(settings.database.url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).expanduser().parent / "digest.key"
    import platformdirs

    return Path(platformdirs.user_state_dir("ghostwatch")) / "digest.key"


def owner_address(settings: Settings, account: AccountSettings) -> str:
    return settings.approval.digest_to or account.address


def _zone(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.policy.defaults.time_zone)


# --- when ---------------------------------------------------------------------------------


def digest_due(
    last_sent: datetime | None, now: datetime, times: Sequence[str], days: Sequence[str],
    zone: ZoneInfo,
) -> datetime | None:  # fmt: skip
    """The scheduled instant a digest is owed for (the latest one at or before ``now``,
    within the last week), or None when the last digest already covers it. A restart
    after downtime owes one digest, not one per missed time (pure)."""
    local = now.astimezone(zone)
    for back in range(8):
        day = (local - timedelta(days=back)).date()
        if _WEEKDAYS[day.weekday()] not in days:
            continue
        for hhmm in sorted(times, reverse=True):
            hour, minute = (int(x) for x in hhmm.split(":"))
            at = datetime.combine(day, time(hour, minute), zone)
            if at <= now:
                return at if last_sent is None or last_sent < at else None
    return None


# --- building the digest ------------------------------------------------------------------


@dataclass
class _Gathered:
    content: Any  # digestview.DigestContent without the token tag filled in
    rows: list[OutboxRow]
    fingerprint: str


def _gather(db: Session, settings: Settings, account: AccountSettings, now: datetime) -> _Gathered:
    from ghostwatch import digestview as view
    from ghostwatch.replycommands import HELP_TEXT_EN, HELP_TEXT_IT

    policy = settings.policy
    locale = policy.defaults.locale
    waiting = select(OutboxRow).where(
        OutboxRow.account == account.name, OutboxRow.state == State.QUEUED.value
    )
    if settings.sending.auto_send:
        # Auto steps go on their own (listed as upcoming); only the others wait for you.
        waiting = waiting.where(OutboxRow.mode == "approve")
    rows = list(db.scalars(waiting.order_by(OutboxRow.due_at, OutboxRow.id)))
    drafts = tuple(
        view.DraftItem(
            number=i,
            row_id=r.id,
            to=r.to_addr,
            subject=reply_subject(r.subject),
            step=r.step,
            why=r.reason,
            body=r.body_text,
            attachments=(Path(r.attachment).name,) if r.attachment else (),
            due_at=r.due_at,
            auto=r.mode == "auto",
        )
        for i, r in enumerate(rows, start=1)
    )
    facts = gather(db, account, policy)
    clients = {f.thread_id: policy.client_for(f.verdict.counterparts) for f in facts}
    tasks = []
    for step in engine.plan(facts, policy, now, until=now):
        if step.action != "task":
            continue
        client = clients.get(step.thread_id)
        subject = next((f.subject for f in facts if f.thread_id == step.thread_id), "")
        tasks.append(
            view.TaskItem(
                thread_id=step.thread_id,
                counterpart=step.counterpart or "?",
                subject=subject,
                kind=step.task or "task",
                text=step.reason,
                phone=client.phone if client is not None else None,
                checklist=step.checklist,
            )
        )
    flags = [
        view.Flag(
            kind="uncertain_send",
            text=f"#{r.id} to {r.to_addr} ({r.step}) may or may not have gone out: check "
            f"your Sent folder, then ghostwatch settle {r.id} --sent or --not-sent",
        )
        for r in db.scalars(
            select(OutboxRow).where(
                OutboxRow.account == account.name, OutboxRow.state == State.UNCERTAIN.value
            )
        )
    ]
    flags += [
        view.Flag(kind="failed_send", text=f"#{r.id} to {r.to_addr} was not sent: {r.last_error}")
        for r in db.scalars(
            select(OutboxRow).where(
                OutboxRow.account == account.name, OutboxRow.state == State.FAILED.value
            )
        )
    ]
    flags += _client_flags(facts, {r.thread_id for r in rows} | {t.thread_id for t in tasks},
                           policy.defaults.slow_client_days)  # fmt: skip
    upcoming = [
        view.Upcoming(
            to=r.to_addr,
            subject=reply_subject(r.subject),
            step=r.step,
            at=r.due_at,
            stop_hint=f"ghostwatch skip {r.id}",
        )
        for r in db.scalars(
            select(OutboxRow).where(
                OutboxRow.account == account.name,
                OutboxRow.state == State.APPROVED.value,
                OutboxRow.due_at <= now + _UPCOMING,
            )
        )
    ]
    content = view.DigestContent(
        owner_name=settings.profile.name or account.display_name or account.address,
        account=account.name,
        generated_at=now,
        time_zone=policy.defaults.time_zone,
        locale=locale,
        drafts=drafts,
        tasks=tuple(tasks),
        flags=tuple(flags),
        upcoming=tuple(upcoming),
        token_tag="",
        help_text=HELP_TEXT_IT if locale == "it" else HELP_TEXT_EN,
    )
    shown = {
        "drafts": [(r.id, body_hash(r.body_text)) for r in rows],
        "tasks": [(t.thread_id, t.kind) for t in tasks],
        "flags": [f.text for f in flags],
        "upcoming": [u.stop_hint for u in upcoming],
    }
    fingerprint = hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()
    return _Gathered(content, rows, fingerprint)


def _client_flags(facts: Sequence[Any], threads: set[str], slow_days: float) -> list[Any]:
    """What the owner should know about the clients of this digest's threads: a
    habitually slow answerer (so silence is not alarming yet), a late payer."""
    from statistics import mean, median

    from ghostwatch import digestview as view

    out: list[Any] = []
    seen: set[str] = set()
    for f in facts:
        who = f.verdict.counterpart or "?"
        if f.thread_id not in threads or who in seen:
            continue
        seen.add(who)
        if len(f.reply_latencies) >= 3:
            days = median(d.total_seconds() for d in f.reply_latencies) / 86400
            if days > slow_days:
                out.append(view.Flag(
                    kind="slow_client",
                    text=f"{who} usually answers in {days:.0f} days (median of "
                    f"{len(f.reply_latencies)} replies): silence is not unusual yet",
                ))  # fmt: skip
        late = [d for d in f.days_late_history if d > 0]
        if late:
            out.append(view.Flag(
                kind="late_payer",
                text=f"{who} paid late before: {len(late)} of {len(f.days_late_history)} "
                f"invoices, {mean(late):.0f} days late on average",
            ))  # fmt: skip
    return out


def preview_digest(db: Session, settings: Settings, account: AccountSettings, now: datetime) -> Any:
    """The digest as it would be rendered now (token placeholder); sends nothing."""
    from dataclasses import replace

    from ghostwatch.digestview import render_digest

    got = _gather(db, settings, account, now)
    placeholder = "[gw:TOKEN]"  # the real token is drawn when the digest is sent
    return render_digest(replace(got.content, token_tag=placeholder))


def _smtp_password(account: AccountSettings) -> tuple[str, str | None]:
    if account.smtp is None:
        raise GhostwatchError(f"account {account.name!r} has no [accounts.smtp]: cannot mail you")
    token_command = account.smtp.token_command
    password = "" if token_command else resolve_password(account.smtp, f"{account.name}/smtp")
    return password, token_command


def _mail_owner(
    account: AccountSettings,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    *,
    message_id: str,
    now: datetime,
    kind: str,
    reply_to: str | None = None,
    in_reply_to: str | None = None,
) -> str:
    """Send a message of ghostwatch's own to the owner; "" when accepted, else why not."""
    from ghostwatch.smtp import SendOutcome, send_message_sync

    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = email.headerregistry.Address(
        display_name=safe_header_value("From", account.display_name or "ghostwatch"),
        addr_spec=account.address,
    )
    msg["To"] = to
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = safe_header_value("Subject", subject)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    # RFC 3834: ours is automated mail; vacation responders must not answer it and
    # ghostwatch itself never takes it as a command.
    msg["Auto-Submitted"] = "auto-generated" if kind == "digest" else "auto-replied"
    msg[OWN_HEADER] = kind
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    password, token_command = _smtp_password(account)
    result = send_message_sync(
        account, password, msg, mail_from=account.address, rcpts=[to], token_command=token_command
    )
    return "" if result.outcome is SendOutcome.SENT else result.message


def send_digest(
    sessions: sessionmaker[Session],
    settings: Settings,
    account: AccountSettings,
    clock: Clock,
    *,
    force: bool = False,
) -> str:
    """Send the digest now if there is something (new) to say; returns what happened."""
    from dataclasses import replace

    from ghostwatch.digestview import is_empty, render_digest

    now = clock.now()
    to = owner_address(settings, account)
    with sessions() as db:
        got = _gather(db, settings, account, now)
        if not force and is_empty(got.content) and not settings.approval.send_when_empty:
            return "nothing to report: no digest sent"
        last = db.scalars(
            select(DigestRow)
            .where(DigestRow.account == account.name, DigestRow.sent_at.is_not(None))
            .order_by(DigestRow.id.desc())
            .limit(1)
        ).first()
        if not force and last is not None and last.fingerprint == got.fingerprint:
            return "nothing new since the last digest: none sent"
        token = new_token()
        message_id = make_message_id(account.address.rpartition("@")[2])
        expires = now + timedelta(hours=settings.approval.token_hours)
        items = tuple((d.number, d.row_id, body_hash(d.body)) for d in got.content.drafts)
        row = DigestRow(
            account=account.name,
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            message_id=message_id,
            to_addr=to,
            issued_at=now,
            expires_at=expires,
            mac="",
            items=json.dumps(items),
            fingerprint=got.fingerprint,
        )
        db.add(row)
        db.flush()
        binding = Binding(str(row.id), message_id, now, expires, items)
        row.mac = seal(load_or_create_key(key_path(settings)), token, binding)
        db.commit()  # durable before the digest goes out
        digest_id = row.id
    rendered = render_digest(replace(got.content, token_tag=subject_tag(token)))
    approval = settings.approval
    reply_to = reply_address(to, token, plus=approval.plus_addressing, alias=approval.reply_alias)
    problem = _mail_owner(
        account, to, rendered.subject, rendered.text, rendered.html,
        message_id=message_id, now=now, kind="digest", reply_to=reply_to,
    )  # fmt: skip
    if problem:
        log.warning("digest_not_sent", account=account.name, error=problem)
        with sessions() as db:
            # It never went out: its token is void, and the next pass tries again.
            stored = db.get(DigestRow, digest_id)
            if stored is not None:
                db.delete(stored)
                db.commit()
        return f"digest not sent: {problem}"
    with sessions() as db:
        stored = db.get(DigestRow, digest_id)
        if stored is not None:
            stored.sent_at = now
            db.commit()
    log.info("digest_sent", account=account.name, drafts=len(got.rows), to=to)
    return f"digest sent to {to}: {len(got.rows)} draft(s)"


# --- replies ------------------------------------------------------------------------------


@dataclass
class ReplyOutcome:
    """What became of one reply to a digest."""

    message_id: str
    sender: str
    accepted: bool
    reason: str = ""
    done: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    confirm: bool = True


def _candidates(db: Session, account: AccountSettings, since: datetime) -> list[MessageRow]:
    """INBOX messages dated from ``since`` that may answer a digest, not yet handled."""
    inbox = select(Folder.id).where(Folder.account == account.name, Folder.role == "inbox")
    handled = select(HandledReply.message_id).where(HandledReply.account == account.name)
    return list(
        db.scalars(
            select(MessageRow)
            .where(
                MessageRow.account == account.name,
                # Read through the (account, date) index: the text tests below cannot
                # use one, and a whole mailbox is seconds at a million messages.
                MessageRow.date >= since,
                MessageRow.folder_id.in_(inbox),
                MessageRow.message_id.is_not(None),
                MessageRow.message_id.not_in(handled),
                or_(
                    # A reply to a digest without its token is looked at too, so that a
                    # forgery is refused with a reason rather than silently ignored.
                    MessageRow.in_reply_to.in_(
                        select(DigestRow.message_id).where(DigestRow.account == account.name)
                    ),
                    func.lower(MessageRow.subject).contains("[gw:"),
                    func.lower(MessageRow.to_addrs).contains("+gw-"),
                    func.lower(MessageRow.cc_addrs).contains("+gw-"),
                ),
            )
            .order_by(MessageRow.date)
        )
    )


def _fetch(account: AccountSettings, uids: list[int]) -> dict[int, bytes]:
    from ghostwatch.imap import connect

    session = connect(account, resolve_password(account.imap, f"{account.name}/imap"))
    try:
        session.examine("INBOX")
        return session.fetch_partial(uids, "", _MAX_REPLY_BYTES)
    finally:
        session.logout()


def _addresses(msg: EmailMessage, *names: str) -> list[str]:
    values = [str(v) for name in names for v in msg.get_all(name, [])]
    return [a.lower() for _n, a in getaddresses(values) if a]


def _ids(value: str | None) -> set[str]:
    from ghostwatch.threads import parse_msgid_list

    return set(parse_msgid_list(value or ""))


def judge_reply(  # noqa: PLR0917 - the reply and its context
    msg: EmailMessage,
    db: Session,
    settings: Settings,
    account: AccountSettings,
    key: bytes,
    now: datetime,
) -> tuple[DigestRow | None, str]:
    """(the digest this reply may act on, "") or (None, the reason it may not)."""
    from ghostwatch.authresults import topmost_verdict
    from ghostwatch.replytext import is_automated

    automated = is_automated(msg)
    if automated:
        return None, f"automated message ({automated}): not taken as commands"
    to = _addresses(msg, "To", "Cc", "Delivered-To")
    token = find_token(str(msg.get("Subject", "")), to)
    if token is None:
        return None, "no digest token in the subject or the address"
    digest = db.scalars(
        select(DigestRow).where(
            DigestRow.account == account.name,
            DigestRow.token_hash == hashlib.sha256(token.encode()).hexdigest(),
        )
    ).first()
    if digest is None:
        return None, "the token belongs to no digest of this account"
    items = tuple(tuple(i) for i in json.loads(digest.items))
    binding = Binding(str(digest.id), digest.message_id, digest.issued_at, digest.expires_at,
                      items)  # fmt: skip
    problem = verify(key, token, binding, digest.mac, now)
    if problem:
        return None, problem
    senders = _addresses(msg, "From")
    owners = {a.lower() for a in account.own_addresses()} | {
        owner_address(settings, account).lower()
    }
    if len(senders) != 1 or senders[0] not in owners:
        return None, f"from {', '.join(senders) or 'nobody'}, not from one of your addresses"
    refs = _ids(msg.get("In-Reply-To")) | _ids(msg.get("References"))
    if digest.message_id not in refs:
        return None, "not a reply to the digest the token belongs to"
    approval = settings.approval
    if approval.require_auth and approval.authserv_id:
        headers = [str(v) for v in msg.get_all("Authentication-Results", [])]
        verdict = topmost_verdict(headers, approval.authserv_id)
        why = verdict.passes(approval.require_auth, senders[0].rpartition("@")[2])
        if why:
            return None, f"authentication: {why}"
    if approval.require_in_sent:
        sent = select(Folder.id).where(Folder.account == account.name, Folder.role == "sent")
        found = db.scalar(
            select(MessageRow.id).where(
                MessageRow.account == account.name,
                MessageRow.folder_id.in_(sent),
                MessageRow.message_id == str(msg.get("Message-ID", "")).strip(),
            )
        )
        if found is None:
            return None, "not found in your Sent folder (require_in_sent)"
    return digest, ""


def _item_rows(digest: DigestRow) -> dict[int, tuple[int, str]]:
    return {int(n): (int(r), str(h)) for n, r, h in json.loads(digest.items)}


def _use_item(  # noqa: PLR0917 - the action row's fields
    db: Session, digest: DigestRow, item: int, verb: str, reply_id: str, now: datetime
) -> bool:
    try:
        with db.begin_nested():
            db.add(DigestAction(digest_id=digest.id, item=item, verb=verb,
                                reply_message_id=reply_id, at=now))  # fmt: skip
    except IntegrityError:
        return False
    return True


def _tracking(db: Session, account: str, thread_id: str, now: datetime) -> Tracking:
    row = db.get(Tracking, (account, thread_id))
    if row is None:
        row = Tracking(account=account, thread_id=thread_id, updated_at=now)
        db.add(row)
    return row


def _act(  # noqa: PLR0917 - the reply and its context
    db: Session,
    settings: Settings,
    account: AccountSettings,
    digest: DigestRow,
    commands: Iterable[Any],
    reply_id: str,
    now: datetime,
) -> tuple[list[str], list[str], bool]:
    """Carry out the commands; (done, refused, help asked)."""
    from ghostwatch.sender import _still_due, log_step

    items = _item_rows(digest)
    done: list[str] = []
    refused: list[str] = []
    edited: set[int] = set()
    wants_help = False
    zone = _zone(settings)
    for cmd in commands:
        if cmd.verb == "help":
            wants_help = True
            continue
        numbers = sorted(items) if cmd.items == "all" else list(cmd.items)
        for n in numbers:
            if n not in items:
                refused.append(f"{cmd.verb} {n}: the digest has no item {n}")
                continue
            row_id, shown_hash = items[n]
            row = db.get(OutboxRow, row_id)
            if row is None:
                refused.append(f"{cmd.verb} {n}: the draft is gone")
                continue
            if cmd.verb == "edit":
                if row.state not in (State.QUEUED.value, State.APPROVED.value):
                    refused.append(f"edit {n}: the draft is {row.state}")
                    continue
                row.body_text = (cmd.text or "").rstrip("\n") + "\n"
                row.body_html = None
                items[n] = (row_id, body_hash(row.body_text))
                edited.add(n)
                done.append(f"edit {n}: new text for {row.to_addr} (send it with: send {n})")
                continue
            if n not in edited and body_hash(row.body_text) != shown_hash:
                refused.append(f"{cmd.verb} {n}: the draft changed since this digest")
                continue
            if not _use_item(db, digest, n, cmd.verb, reply_id, now):
                refused.append(f"{cmd.verb} {n}: already acted on (each item acts once)")
                continue
            if row.state not in (State.QUEUED.value, State.APPROVED.value):
                refused.append(f"{cmd.verb} {n}: the draft is {row.state}")
                continue
            current = State(row.state)
            if cmd.verb == "send":
                found = gather(db, account, settings.policy, thread_ids=[row.thread_id])
                verdict = _still_due(db, row, found[0] if found else None, settings.policy, now)
                if verdict.planned is None:
                    outbox.move(db, row.id, State.CANCELLED, now, expect=current,
                                error=verdict.why)  # fmt: skip
                    refused.append(f"send {n}: cancelled, {verdict.why}")
                    continue
                if current is State.QUEUED:
                    outbox.move(db, row.id, State.APPROVED, now, expect=current)
                done.append(f"send {n}: approved, to {row.to_addr} ({row.step})")
            elif cmd.verb == "skip":
                outbox.move(
                    db, row.id, State.SKIPPED, now, expect=current, error="skipped by reply"
                )
                log_step(db, row, "skipped", now)
                done.append(f"skip {n}: {row.to_addr} ({row.step}) will not be sent")
            elif cmd.verb == "snooze" and cmd.until is not None:
                outbox.snooze(db, row.id, datetime.combine(cmd.until, time(9, 0), zone), now)
                done.append(f"snooze {n}: back in a digest on {cmd.until:%a %d %b}")
            elif cmd.verb in ("stop", "paid"):
                track = _tracking(db, account.name, row.thread_id, now)
                if cmd.verb == "paid":
                    if not track.invoice_number:
                        refused.append(f"paid {n}: no invoice is tracked for this thread")
                        continue
                    track.paid_at = now
                else:
                    track.stopped = "stopped by reply to the digest"
                track.updated_at = now
                outbox.move(db, row.id, State.CANCELLED, now, expect=current,
                            error=f"{cmd.verb} by reply")  # fmt: skip
                done.append(f"{cmd.verb} {n}: no more follow-ups in this thread")
            else:
                refused.append(f"{cmd.verb} {n}: not understood")
    return done, refused, wants_help


def _confirmation_text(outcome: ReplyOutcome, help_text: str | None) -> str:
    lines = ["ghostwatch read your reply."]
    if not outcome.accepted:
        lines += ["", f"Nothing was done: {outcome.reason}"]
    if outcome.done:
        lines += ["", "Done:"] + [f"  - {d}" for d in outcome.done]
    if outcome.refused:
        lines += ["", "Not done:"] + [f"  - {r}" for r in outcome.refused]
    if help_text:
        lines += ["", help_text]
    return "\n".join(lines) + "\n"


def process_replies(
    sessions: sessionmaker[Session],
    settings: Settings,
    account: AccountSettings,
    clock: Clock,
) -> list[ReplyOutcome]:
    """Read the owner's replies to digests from the synced INBOX and act on them."""
    from ghostwatch.replycommands import HELP_TEXT_EN, HELP_TEXT_IT, parse
    from ghostwatch.replytext import own_text

    # Replies dated before the lookback answer digests whose commands expired long ago
    # (see _REPLY_LOOKBACK); they are not read.
    since = clock.now() - timedelta(hours=settings.approval.token_hours) - _REPLY_LOOKBACK
    with sessions() as db:
        candidates = [(m.uid, m.message_id or "") for m in _candidates(db, account, since)]
    if not candidates:
        return []
    raw = _fetch(account, [uid for uid, _ in candidates])
    key = load_or_create_key(key_path(settings))
    outcomes: list[ReplyOutcome] = []
    locale = settings.policy.defaults.locale
    for uid, message_id in candidates:
        now = clock.now()
        data = raw.get(uid)
        if data is None:
            continue
        msg = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)  # noqa: S101 - policy.default guarantees it
        sender = ", ".join(_addresses(msg, "From"))
        if msg.get(OWN_HEADER):
            outcome = ReplyOutcome(message_id, sender, False, "ghostwatch's own message",
                                   confirm=False)  # fmt: skip
            with sessions() as db:
                _handled(db, account, outcome, now)
            continue
        with sessions() as db:
            digest, reason = judge_reply(msg, db, settings, account, key, now)
            if digest is None:
                outcome = ReplyOutcome(message_id, sender, False, reason,
                                       confirm="automated" not in reason)  # fmt: skip
                log.warning("digest_reply_refused", account=account.name, sender=sender,
                            reason=reason)  # fmt: skip
            else:
                parsed = parse(own_text(msg), today=now.astimezone(_zone(settings)).date(),
                               tz=settings.policy.defaults.time_zone)  # fmt: skip
                done, refused, wants_help = _act(db, settings, account, digest,
                                                 parsed.commands, message_id, now)  # fmt: skip
                refused += [f"not understood: {line}" for line in parsed.not_understood]
                outcome = ReplyOutcome(message_id, sender, True, done=done, refused=refused)
                if wants_help or (not done and not refused):
                    outcome.reason = "help"
                log.info("digest_reply", account=account.name, done=done, refused=refused)
            _handled(db, account, outcome, now)
            db.commit()
        outcomes.append(outcome)
        if outcome.confirm:
            help_text = (HELP_TEXT_IT if locale == "it" else HELP_TEXT_EN) if (
                outcome.reason == "help" or not outcome.accepted
            ) else None  # fmt: skip
            problem = _mail_owner(
                account,
                owner_address(settings, account),
                "ghostwatch: " + ("done" if outcome.accepted else "reply refused"),
                _confirmation_text(outcome, help_text),
                None,
                message_id=make_message_id(account.address.rpartition("@")[2]),
                now=now,
                kind="confirmation",
                in_reply_to=message_id,
            )
            if problem:
                log.warning("confirmation_not_sent", account=account.name, error=problem)
    return outcomes


def _handled(db: Session, account: AccountSettings, outcome: ReplyOutcome, now: datetime) -> None:
    summary = "accepted" if outcome.accepted else f"refused: {outcome.reason}"
    try:
        with db.begin_nested():
            db.add(HandledReply(account=account.name, message_id=outcome.message_id,
                                outcome=summary[:2000], at=now))  # fmt: skip
    except IntegrityError:
        pass
    db.commit()


def maybe_send_digest(
    sessions: sessionmaker[Session], settings: Settings, account: AccountSettings, clock: Clock
) -> str | None:
    """Send the digest if one is owed now (see :func:`digest_due`); None if not owed.
    A slot with nothing to report is remembered as a digest row never sent, so the
    next pass does not ask again until the next scheduled time."""
    now = clock.now()
    with sessions() as db:
        last = db.scalar(
            select(func.max(DigestRow.issued_at)).where(DigestRow.account == account.name)
        )
    approval = settings.approval
    owed = digest_due(last, now, approval.times, approval.days, _zone(settings))
    if owed is None:
        return None
    result = send_digest(sessions, settings, account, clock)
    if result.startswith("nothing"):
        with sessions() as db:
            db.add(
                DigestRow(
                    account=account.name,
                    token_hash=hashlib.sha256(os.urandom(32)).hexdigest(),
                    message_id=f"<skipped-{os.urandom(8).hex()}@ghostwatch.invalid>",
                    to_addr="",
                    issued_at=now,
                    expires_at=now,
                    mac="",
                    items="[]",
                    fingerprint="",
                )
            )
            db.commit()
    return result
