"""The outbox on the command line: ``send``, ``queue``, ``show``, ``approve``, ``skip``
and ``settle``. Registered on the main group by :mod:`ghostwatch.cli`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from sqlalchemy import select

from ghostwatch.cliutil import Context, _fail
from ghostwatch.compose import reply_subject
from ghostwatch.errors import GhostwatchError

#: States shown by ``queue`` without ``--all``: what still needs someone.
_OPEN = ("queued", "approved", "sending", "uncertain", "failed")


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def row_json(row: Any) -> dict[str, Any]:
    """The stable JSON shape of an outbox row (``queue --json``, ``show --json``)."""
    return {
        "id": row.id,
        "thread_id": row.thread_id,
        "account": row.account,
        "to": row.to_addr,
        "subject": reply_subject(row.subject),
        "step": row.step,
        "state": row.state,
        "mode": row.mode,
        "due_at": _iso(row.due_at),
        "message_id": row.message_id,
        "reason": row.reason,
        "attachment": row.attachment,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "next_attempt_at": _iso(row.next_attempt_at),
        "sent_at": _iso(row.sent_at),
    }


_QUESTION = {
    "uncertain": "did this go out? Check your Sent folder, then: ghostwatch settle {id} --sent "
    "(it did) or --not-sent (it did not; it will be sent again)",
    "failed": "not sent: {error}. Fix it, then ghostwatch approve {id} to try again",
    "queued": "waiting for you: ghostwatch approve {id} / skip {id}",
}


@click.command("send")
@click.option("--dry-run", is_flag=True, help="Send nothing; show what would go out.")
@click.option("--account", "account_name", metavar="NAME", help="Only this account.")
@click.pass_obj
def send(obj: Context, dry_run: bool, account_name: str | None) -> None:
    """Queue the follow-ups that are due and send those that may go now.

    A draft goes out only when it is approved (or its step has mode "auto" and
    [sending] auto_send is on), it is inside the client's send window, the
    per-client and hourly caps allow it, and a re-sync right before sending shows
    the client has still not answered. --dry-run (or [sending] dry_run) shows all
    of this and sends nothing.
    """
    from ghostwatch.sender import send_pending
    from ghostwatch.sync import sync_account

    try:
        settings = obj.settings
        accounts = obj.accounts(account_name)
        sessions = obj.sessions()
    except GhostwatchError as exc:
        _fail(exc)
        return
    dry = dry_run or settings.sending.dry_run
    if dry:
        click.echo("Dry run: nothing will be sent.")
    failed = False
    for account in accounts:

        def resync(account: Any = account) -> None:
            sync_account(account, sessions, obj.clock.now(), connect_attempts=1)

        report = send_pending(sessions, settings, account, obj.clock, dry_run=dry, resync=resync)
        if not report.outcomes:
            click.echo(f"{account.name}: nothing to send.")
        for o in report.outcomes:
            ident = f"#{o.row_id}" if o.row_id else "-"
            click.echo(f"{account.name} {ident} {o.what}: {o.to} {o.step} {o.subject!r}".rstrip())
            click.echo(f"    {o.detail}")
            failed = failed or o.what in ("failed", "uncertain", "refused")
        if dry:
            # Show everything: the full text of each draft, whether it would go now or not.
            shown = report.of("would-send") + report.of("held") + report.of("queued")
            _print_would_send(sessions, sorted({o.row_id for o in shown if o.row_id}))
    if failed:
        raise SystemExit(1)


def _print_would_send(sessions: Any, ids: list[int]) -> None:
    from ghostwatch.store import OutboxRow

    with sessions() as db:
        for row_id in ids:
            row = db.get(OutboxRow, row_id)
            if row is not None:
                click.echo("")
                _print_row(row)


def _print_row(row: Any) -> None:
    click.echo(f"#{row.id}  {row.state}  step {row.step} ({row.mode})  thread {row.thread_id}")
    click.echo(f"To: {row.to_addr}")
    click.echo(f"Subject: {reply_subject(row.subject)}")
    click.echo(f"Message-ID: {row.message_id}")
    click.echo(f"Due: {row.due_at:%a %d %b %Y %H:%M %Z}  ({row.reason})")
    if row.attachment:
        click.echo(f"Attachment: {row.attachment}")
    if row.last_error:
        click.echo(f"Last note: {row.last_error}")
    click.echo("")
    click.echo(row.body_text.rstrip("\n"))


@click.command("queue")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.option("--all", "show_all", is_flag=True, help="Include sent, cancelled and skipped.")
@click.option("--account", "account_name", metavar="NAME", help="Only this account.")
@click.pass_obj
def queue(obj: Context, as_json: bool, show_all: bool, account_name: str | None) -> None:
    """The outbox: drafts waiting for you, approved, failed or uncertain.

    Run `ghostwatch send` (or the daemon) to fill it from the plan."""
    from ghostwatch.store import OutboxRow

    try:
        accounts = [a.name for a in obj.accounts(account_name)]
        sessions = obj.sessions()
    except GhostwatchError as exc:
        _fail(exc)
        return
    with sessions() as db:
        query = select(OutboxRow).where(OutboxRow.account.in_(accounts))
        if not show_all:
            query = query.where(OutboxRow.state.in_(_OPEN))
        rows = list(db.scalars(query.order_by(OutboxRow.due_at, OutboxRow.id)))
    if as_json:
        click.echo(json.dumps([row_json(r) for r in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("The outbox is empty." if show_all else "Nothing waits in the outbox.")
        return
    for r in rows:
        click.echo(f"#{r.id:<4} {r.state:<9} {r.due_at:%a %d %b %H:%M %Z}  {r.to_addr}  {r.step}")
        click.echo(f"      {reply_subject(r.subject)}")
        question = _QUESTION.get(r.state)
        if question:
            click.echo("      " + question.format(id=r.id, error=r.last_error or "?"))


@click.command("show")
@click.argument("row_id", metavar="ID", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the row as JSON, body included.")
@click.pass_obj
def show(obj: Context, row_id: int, as_json: bool) -> None:
    """Everything about one outbox row, with the full text that would be sent."""
    from ghostwatch.store import OutboxRow

    try:
        sessions = obj.sessions()
    except GhostwatchError as exc:
        _fail(exc)
        return
    with sessions() as db:
        row = db.get(OutboxRow, row_id)
        if row is None:
            _fail(GhostwatchError(f"no outbox row #{row_id} (see `ghostwatch queue --all`)"))
            return
        if as_json:
            data = row_json(row) | {"body_text": row.body_text, "body_html": row.body_html}
            click.echo(json.dumps(data, indent=2, ensure_ascii=False))
            return
        _print_row(row)


def _move_many(obj: Context, ids: tuple[int, ...], verb: str) -> None:
    from ghostwatch import outbox
    from ghostwatch.outbox import State
    from ghostwatch.sender import log_step
    from ghostwatch.store import OutboxRow

    try:
        sessions = obj.sessions()
    except GhostwatchError as exc:
        _fail(exc)
        return
    now = obj.clock.now()
    refused = False
    with sessions() as db:
        for row_id in ids:
            row = db.get(OutboxRow, row_id)
            if row is None:
                click.echo(f"#{row_id}: no such outbox row", err=True)
                refused = True
                continue
            current = State(row.state)
            target = {"approve": State.APPROVED, "skip": State.SKIPPED}[verb]
            try:
                outbox.move(db, row_id, target, now, expect=current,
                            error=f"{verb}d by you" if verb == "skip" else None)  # fmt: skip
                if target is State.SKIPPED:
                    log_step(db, row, "skipped", now)
                db.commit()
            except outbox.OutboxError:
                db.rollback()
                click.echo(f"#{row_id}: is {current.value}; cannot {verb} it", err=True)
                refused = True
                continue
            click.echo(f"#{row_id}: {target.value} ({row.to_addr}, {row.step})")
    if refused:
        raise SystemExit(1)


@click.command("approve")
@click.argument("ids", metavar="ID...", type=int, nargs=-1, required=True)
@click.pass_obj
def approve(obj: Context, ids: tuple[int, ...]) -> None:
    """Let these drafts go out (at their time, in the send window, within the caps).

    A failed row approved again is retried. An uncertain row is settled with
    `ghostwatch settle`, not here."""
    _move_many(obj, ids, "approve")


@click.command("skip")
@click.argument("ids", metavar="ID...", type=int, nargs=-1, required=True)
@click.pass_obj
def skip(obj: Context, ids: tuple[int, ...]) -> None:
    """Never send these drafts; the policy moves on to its next step."""
    _move_many(obj, ids, "skip")


@click.command("settle")
@click.argument("row_id", metavar="ID", type=int)
@click.option("--sent", "went_out", flag_value=True, default=None, help="It went out.")
@click.option("--not-sent", "went_out", flag_value=False, help="It did not: send it again.")
@click.pass_obj
def settle(obj: Context, row_id: int, went_out: bool | None) -> None:
    """Answer "did this go out?" for an uncertain row (after a crash or a lost reply).

    ghostwatch never resends an uncertain message by itself: look in your Sent
    folder (or ask the client), then say --sent or --not-sent."""
    from ghostwatch import outbox
    from ghostwatch.outbox import State
    from ghostwatch.sender import log_step
    from ghostwatch.store import OutboxRow

    if went_out is None:
        raise click.UsageError("say --sent or --not-sent")
    try:
        sessions = obj.sessions()
    except GhostwatchError as exc:
        _fail(exc)
        return
    now = obj.clock.now()
    with sessions() as db:
        row = db.get(OutboxRow, row_id)
        if row is None or row.state != State.UNCERTAIN.value:
            state = row.state if row is not None else "missing"
            _fail(GhostwatchError(f"outbox row #{row_id} is {state}, not uncertain"))
            return
        target = State.SENT if went_out else State.APPROVED
        said = "it went out" if went_out else "it did not go out"
        outbox.move(
            db, row_id, target, now, expect=State.UNCERTAIN, error=f"settled by you: {said}"
        )
        if went_out:
            log_step(db, row, "sent", now)
        db.commit()
    click.echo(f"#{row_id}: {target.value}" + ("" if went_out else " (it will be sent again)"))


@click.command("snooze")
@click.argument("row_id", metavar="ID", type=int)
@click.argument("duration", metavar="DURATION")
@click.pass_obj
def snooze(obj: Context, row_id: int, duration: str) -> None:
    """Put a draft back until later: DURATION is "3d", "2w", "until 10 dec" (also in
    Italian: "3g", "fino al 10 dicembre"). It comes back in the digest then, waiting
    for your approval."""
    from datetime import datetime as dt
    from datetime import time
    from zoneinfo import ZoneInfo

    from ghostwatch import outbox
    from ghostwatch.replycommands import parse

    try:
        settings = obj.settings
        sessions = obj.sessions()
    except GhostwatchError as exc:
        _fail(exc)
        return
    now = obj.clock.now()
    zone = ZoneInfo(settings.policy.defaults.time_zone)
    parsed = parse(f"snooze 1 {duration}", today=now.astimezone(zone).date())
    if not parsed.commands or parsed.commands[0].until is None:
        raise click.BadParameter(
            f"{duration!r}: say how long, e.g. 3d, 2w, 'until 10 dec'", param_hint="DURATION"
        )
    until = parsed.commands[0].until
    with sessions() as db:
        try:
            outbox.snooze(db, row_id, dt.combine(until, time(9, 0), zone), now)
        except outbox.OutboxError as exc:
            _fail(exc)
            return
        db.commit()
    click.echo(f"#{row_id}: snoozed until {until:%a %d %b %Y}; it will wait for your approval")


@click.command("digest")
@click.option("--send", "send_now", is_flag=True, help="Send it now (even if nothing is new).")
@click.option("--account", "account_name", metavar="NAME", help="Only this account.")
@click.option("--html", "show_html", is_flag=True, help="Print the HTML part too.")
@click.pass_obj
def digest(obj: Context, send_now: bool, account_name: str | None, show_html: bool) -> None:
    """Show the digest email as it would be sent now, or --send it.

    The digest lists the drafts waiting for you, numbered, with the tasks and flags;
    reply to it with commands such as "send 1 3", "skip 2", "snooze 2 3d" (the
    commands are listed at its end). `ghostwatch run` sends it at [approval] times."""
    from ghostwatch.approval import preview_digest, send_digest

    try:
        settings = obj.settings
        accounts = obj.accounts(account_name)
        sessions = obj.sessions()
    except GhostwatchError as exc:
        _fail(exc)
        return
    for account in accounts:
        if send_now:
            try:
                click.echo(f"{account.name}: " + send_digest(sessions, settings, account,
                                                             obj.clock, force=True))  # fmt: skip
            except GhostwatchError as exc:
                _fail(exc)
            continue
        with sessions() as db:
            rendered = preview_digest(db, settings, account, obj.clock.now())
        click.echo(f"Subject: {rendered.subject}\n")
        click.echo(rendered.text.rstrip("\n"))
        if show_html:
            click.echo("\n" + rendered.html)


COMMANDS = (send, queue, show, approve, skip, settle, snooze, digest)
