"""The ``ghostwatch`` command line. Only this module exits the process."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import structlog
from sqlalchemy import select

from ghostwatch import __version__
from ghostwatch.cliutil import (
    EXIT_CONFIG,
    EXIT_ERROR,
    Context,
    _fail,
    _parse_instant,
    _parse_now,
)
from ghostwatch.clock import FixedClock
from ghostwatch.config import AccountSettings, Settings
from ghostwatch.errors import ConfigNotFoundError, GhostwatchError
from ghostwatch.log import configure_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ghostwatch")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Config file (default: $GHOSTWATCH_CONFIG, ~/.config/ghostwatch/config.toml, "
    "/etc/ghostwatch/config.toml).",
)
@click.option(
    "--now",
    callback=_parse_now,
    metavar="ISO",
    help="Pretend the current time is ISO (e.g. 2026-12-01T09:00+01:00).",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, now: datetime | None) -> None:
    """ghostwatch watches your mailbox and follows up with clients who went silent.

    It reads your INBOX and Sent folder, works out which of your messages still
    await a real answer (auto-replies, bounces and newsletters don't count), and
    tells you.
    """
    configure_logging("warning")
    ctx.obj = Context(config_path, now)


@main.command("check-config")
@click.pass_obj
def check_config(obj: Context) -> None:
    """Validate the configuration file and say what it contains."""
    try:
        settings = obj.settings
    except GhostwatchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    click.echo(f"{obj.settings_path}: OK")
    click.echo(f"  database: {settings.database.url}")
    if not settings.accounts:
        click.echo("  warning: no [[accounts]] configured; nothing to sync")
    policy = settings.policy
    click.echo(
        f"  defaults: stage {policy.defaults.stage}, time zone {policy.defaults.time_zone}"
        + (f", holidays of {policy.defaults.country}" if policy.defaults.country else "")
    )
    click.echo(
        "  policies: "
        + ", ".join(f"{name} ({len(p.steps)} steps)" for name, p in sorted(policy.policies.items()))
    )
    click.echo(f"  {len(policy.clients)} client(s), {len(policy.rules)} rule(s)")
    sending = settings.sending
    click.echo(
        "  sending: "
        + ("DRY RUN (nothing is sent), " if sending.dry_run else "")
        + ('mode "auto" steps go on their own' if sending.auto_send else "every step waits for you")
        + f"; at most {sending.hourly_cap}/hour and {sending.per_client_daily}/client/day"
        + f"; copy to Sent: {sending.save_to_sent.value}"
    )
    for account in settings.accounts:
        aliases = f" (+{len(account.aliases)} aliases)" if account.aliases else ""
        smtp = f", SMTP {account.smtp.host}" if account.smtp else ""
        click.echo(
            f"  account {account.name}: {account.address}{aliases}, IMAP {account.imap.host}:"
            f"{account.imap.effective_port()} ({account.imap.security.value}){smtp}"
        )


@main.command()
@click.option("--account", "account_name", metavar="NAME", help="Sync only this account.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
def sync(obj: Context, account_name: str | None, quiet: bool) -> None:
    """Fetch new mail headers from IMAP and re-judge who owes a reply."""
    from ghostwatch.sync import sync_account

    try:
        accounts = obj.accounts(account_name)
        sessions = obj.sessions()
    except GhostwatchError as exc:
        _fail(exc)
        return
    if not accounts:
        click.echo("error: no [[accounts]] in the configuration; nothing to sync", err=True)
        sys.exit(EXIT_CONFIG)
    failed = 0
    for account in accounts:
        try:
            with _progress(quiet) as progress:
                result = sync_account(account, sessions, obj.clock.now(), progress=progress)
        except GhostwatchError as exc:
            click.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        unchanged = sum(f.skipped_unchanged for f in result.folders)
        for f in result.folders:
            if f.unavailable:
                click.echo(
                    f"warning: {account.name}: folder {f.name!r} is not on the server any "
                    "more (renamed or deleted); the others were synced",
                    err=True,
                )
        click.echo(
            f"{account.name}: {result.new} new message(s) in {len(result.folders)} folder(s)"
            + (f", {unchanged} unchanged" if unchanged else "")
        )
    if failed:
        sys.exit(EXIT_ERROR)


class _progress:  # noqa: N801 - used as a context manager, reads like one
    """A rich progress bar on a terminal; nothing otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        self._bar.__enter__()

        def update(folder: str, done: int, total: int) -> None:
            if folder not in self._tasks:
                self._tasks[folder] = self._bar.add_task(folder, total=total)
            self._bar.update(self._tasks[folder], completed=done)

        return update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def step_json(step: Any) -> dict[str, Any]:
    """The stable JSON shape of a planned step (``plan --json``, ``replay --json``)."""
    return {
        "thread_id": step.thread_id,
        "account": step.account,
        "step": step.step,
        "action": step.action,
        "template": step.template,
        "mode": step.mode,
        "due_at": step.due_at.isoformat(),
        "reason": step.reason,
        "stage": step.stage,
        "counterpart": step.counterpart,
        "task": step.task,
        "attach_invoice": step.attach_invoice,
        "late_fee": str(step.late_fee) if step.late_fee is not None else None,
        "deadline_at": step.deadline_at.isoformat() if step.deadline_at else None,
        "checklist": list(step.checklist),
    }


def _parse_until(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> datetime | None:
    return _parse_instant(value, end_of_day=True)


@main.command()
@click.option("--until", callback=_parse_until, metavar="DATE", help="Only steps due by DATE.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.option("--account", "account_name", metavar="NAME", help="Only this account.")
@click.pass_obj
def plan(obj: Context, until: datetime | None, as_json: bool, account_name: str | None) -> None:
    """What ghostwatch will do next for each silent thread, and when.

    Reads the store (run `ghostwatch sync` first) and the policies of the config;
    sends nothing. Each line says why: the anchor, the delay, the policy step.
    """
    from ghostwatch import engine
    from ghostwatch.gather import gather

    try:
        settings = obj.settings
        accounts = obj.accounts(account_name)
        sessions = obj.sessions()
    except GhostwatchError as exc:
        _fail(exc)
        return
    now = obj.clock.now()
    steps = []
    with sessions() as db:
        for account in accounts:
            facts = gather(db, account, settings.policy)
            steps += engine.plan(facts, settings.policy, now, until=until)
    steps.sort(key=lambda s: (s.due_at, s.thread_id))
    if as_json:
        click.echo(json.dumps([step_json(s) for s in steps], indent=2, ensure_ascii=False))
        return
    if not steps:
        click.echo("Nothing planned." if until is None else "Nothing planned by then.")
        return
    for s in steps:
        click.echo(
            f"{s.due_at:%a %d %b %H:%M %Z}  {s.counterpart or '?'}  {s.step} "
            f"({s.action}{', ' + s.template if s.template else ''}; {s.mode})"
        )
        click.echo(f"    {s.thread_id}: {s.reason}")


@main.command()
@click.argument("thread_id", metavar="THREAD")
@click.option("--account", "account_name", metavar="NAME", help="Account of the thread.")
@click.pass_obj
def explain(obj: Context, thread_id: str, account_name: str | None) -> None:
    """Why a follow-up step is, or is not, due for THREAD."""
    from ghostwatch import engine
    from ghostwatch.gather import gather

    try:
        settings = obj.settings
        sessions = obj.sessions()
        with sessions() as db:
            account = _account_of_thread(db, settings, thread_id, account_name)
            [facts] = gather(db, account, settings.policy, thread_ids=[thread_id])
    except GhostwatchError as exc:
        _fail(exc)
        return
    result = engine.explain(facts, settings.policy, obj.clock.now())
    click.echo(f"{thread_id} ({account.name}): {facts.subject}")
    click.echo(f"  status: {result.status}")
    for line in result.lines:
        click.echo(f"  {line}")
    client = settings.policy.client_for(facts.verdict.counterparts)
    if client is not None:
        listed = set(client.addresses) | set(facts.verdict.counterparts)
        learned = [a for a in facts.known_addresses if a not in listed]
        click.echo(f"  client: {client.name}; phone: {client.phone or 'none on file'}")
        if learned:
            click.echo(f"  also writes from (learned, not in the config): {', '.join(learned)}")


@main.group()
def templates() -> None:
    """List, show, check and preview the follow-up templates."""


def _templates_dir(obj: Context) -> Path | None:
    try:
        directory = obj.settings.profile.templates_dir
    except GhostwatchError:
        return None  # no config: the shipped templates alone
    return directory.expanduser() if directory else None


@templates.command("list")
@click.pass_obj
def templates_list(obj: Context) -> None:
    """Every template, its language, and whether yours overrides the shipped one."""
    from ghostwatch.templates import list_templates

    for info in list_templates(_templates_dir(obj)):
        html = ", html" if info.has_html else ""
        click.echo(f"{info.name:<28} {info.locale}  ({info.source}{html})")


@templates.command("show")
@click.argument("name")
@click.option("--locale", type=click.Choice(["en", "it"]), default="en", show_default=True)
@click.pass_obj
def templates_show(obj: Context, name: str, locale: str) -> None:
    """Print the source of template NAME."""
    from ghostwatch.templates import template_source

    try:
        path, text = template_source(name, locale, templates_dir=_templates_dir(obj))
    except GhostwatchError as exc:
        _fail(exc)
        return
    click.echo(f"# {path}")
    click.echo(text, nl=False)


@templates.command("check")
@click.pass_obj
def templates_check(obj: Context) -> None:
    """Render every template with sample values; report what would fail at send time."""
    from ghostwatch.templates import check_templates

    try:
        required = {
            step.template
            for policy in obj.settings.policy.policies.values()
            for step in policy.steps
            if step.template
        }
    except GhostwatchError:
        required = set()
    problems = check_templates(_templates_dir(obj), required=sorted(required))
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        sys.exit(EXIT_ERROR)
    click.echo(f"templates OK ({len(required) or 'all'} in use)")


@templates.command("render")
@click.argument("step_name", metavar="STEP")
@click.option("--thread", "thread_id", required=True, metavar="ID", help="The thread.")
@click.option("--account", "account_name", metavar="NAME", help="Account of the thread.")
@click.option("--html", "show_html", is_flag=True, help="Print the HTML alternative too.")
@click.pass_obj
def templates_render(
    obj: Context, step_name: str, thread_id: str, account_name: str | None, show_html: bool
) -> None:
    """Preview exactly what STEP (a policy step or template name) would say in THREAD.

    Nothing is sent; the preview uses the thread, its client, its invoice and your
    [profile] as they are now.
    """
    from ghostwatch.preview import preview

    try:
        settings = obj.settings
        sessions = obj.sessions()
        with sessions() as db:
            account = _account_of_thread(db, settings, thread_id, account_name)
            result = preview(
                db,
                settings,
                account,
                thread_id=thread_id,
                step_name=step_name,
                now=obj.clock.now(),
            )
    except GhostwatchError as exc:
        _fail(exc)
        return
    click.echo(f"To: {result.to}")
    click.echo(f"Subject: {result.subject}")
    click.echo(f"Language: {result.locale}; template: {result.template}")
    click.echo("")
    click.echo(result.rendered.text, nl=False)
    if show_html and result.rendered.html:
        click.echo("\n--- HTML ---")
        click.echo(result.rendered.html, nl=False)


def _account_of_thread(db: Any, settings: Settings, thread_id: str, name: str | None) -> Any:
    from ghostwatch.store import ThreadRow

    query = select(ThreadRow.account).where(ThreadRow.thread_id == thread_id)
    if name:
        query = query.where(ThreadRow.account == name)
    found = sorted(set(db.scalars(query)))
    if not found:
        raise GhostwatchError(
            f"no thread {thread_id!r} in the store (see `ghostwatch status --all`)"
        )
    if len(found) > 1:
        raise GhostwatchError(
            f"thread {thread_id!r} exists in accounts {', '.join(found)}: add --account"
        )
    return settings.account(found[0])


def _tracking(db: Any, account: str, thread_id: str, now: datetime) -> Any:
    from ghostwatch.store import Tracking

    row = db.get(Tracking, (account, thread_id))
    if row is None:
        row = Tracking(account=account, thread_id=thread_id, updated_at=now)
        db.add(row)
    row.updated_at = now
    return row


@main.command()
@click.argument("thread_id", metavar="THREAD")
@click.option("--stage", help="prospect, project, payment, ignore, or a policy of yours.")
@click.option("--invoice", "invoice_number", metavar="NUMBER", help="Invoice number.")
@click.option("--amount", metavar="AMOUNT", help="Invoice amount, e.g. 1200.00.")
@click.option("--currency", metavar="CODE", help="ISO 4217 code, e.g. EUR.")
@click.option("--due", metavar="DATE", help="Invoice due date, YYYY-MM-DD.")
@click.option(
    "--attach",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The invoice file to attach to payment follow-ups.",
)
@click.option("--account", "account_name", metavar="NAME", help="Account of the thread.")
@click.pass_obj
def track(
    obj: Context,
    thread_id: str,
    stage: str | None,
    invoice_number: str | None,
    amount: str | None,
    currency: str | None,
    due: str | None,
    attach: Path | None,
    account_name: str | None,
) -> None:
    """Tell ghostwatch what THREAD is: its stage and, for payments, the invoice."""
    from decimal import Decimal, InvalidOperation

    if not any((stage, invoice_number, amount, currency, due, attach)):
        raise click.UsageError("say what to record: --stage, --invoice, --amount, --due, ...")
    try:
        settings = obj.settings
        if stage is not None and stage not in settings.policy.policies:
            known = ", ".join(sorted(settings.policy.policies))
            raise click.BadParameter(f"no policy {stage!r} (known: {known})", param_hint="--stage")
        if amount is not None:
            try:
                parsed = Decimal(amount)
            except InvalidOperation:
                parsed = Decimal("NaN")
            if not parsed.is_finite() or parsed < 0:
                raise click.BadParameter(f"{amount!r} is not an amount", param_hint="--amount")
        if currency is not None and not (len(currency) == 3 and currency.isalpha()):
            raise click.BadParameter(
                f"{currency!r} is not an ISO 4217 code", param_hint="--currency"
            )
        due_date = None
        if due is not None:
            try:
                due_date = date.fromisoformat(due)
            except ValueError as exc:
                raise click.BadParameter(f"{due!r} is not YYYY-MM-DD", param_hint="--due") from exc
        sessions = obj.sessions()
        with sessions() as db:
            account = _account_of_thread(db, settings, thread_id, account_name)
            row = _tracking(db, account.name, thread_id, obj.clock.now())
            if stage is not None:
                row.stage = stage
            if invoice_number is not None:
                row.invoice_number = invoice_number
            if amount is not None:
                row.amount = str(Decimal(amount))
            if currency is not None:
                row.currency = currency.upper()
            if due_date is not None:
                row.due = due_date
            if attach is not None:
                row.attachment = str(attach.resolve())
            db.commit()
            click.echo(
                f"{thread_id}: stage={row.stage or '(from rules)'}"
                + (f", invoice {row.invoice_number}" if row.invoice_number else "")
                + (f" {row.amount} {row.currency or ''}".rstrip() if row.amount else "")
                + (f", due {row.due}" if row.due else "")
                + (f", attach {row.attachment}" if row.attachment else "")
            )
    except GhostwatchError as exc:
        _fail(exc)


@main.command()
@click.argument("thread_id", metavar="THREAD")
@click.option("--reason", default="stopped by you", show_default=True, help="Shown by explain.")
@click.option("--account", "account_name", metavar="NAME", help="Account of the thread.")
@click.pass_obj
def stop(obj: Context, thread_id: str, reason: str, account_name: str | None) -> None:
    """Never follow up on THREAD again."""
    try:
        settings = obj.settings
        sessions = obj.sessions()
        with sessions() as db:
            account = _account_of_thread(db, settings, thread_id, account_name)
            _tracking(db, account.name, thread_id, obj.clock.now()).stopped = reason
            db.commit()
    except GhostwatchError as exc:
        _fail(exc)
        return
    click.echo(f"{thread_id}: stopped ({reason})")


@main.command()
@click.argument("invoice_number", metavar="INVOICE")
@click.pass_obj
def paid(obj: Context, invoice_number: str) -> None:
    """Record INVOICE as paid: every payment step for it stops."""
    from ghostwatch.store import Tracking

    try:
        sessions = obj.sessions()
    except GhostwatchError as exc:
        _fail(exc)
        return
    with sessions() as db:
        query = select(Tracking).where(Tracking.invoice_number == invoice_number)
        rows = list(db.scalars(query))
        if not rows:
            click.echo(
                f"error: no thread tracks invoice {invoice_number!r} "
                "(record it with `ghostwatch track THREAD --invoice ...`)",
                err=True,
            )
            sys.exit(EXIT_ERROR)
        now = obj.clock.now()
        for row in rows:
            row.paid_at = now
            row.updated_at = now
        db.commit()
        threads = ", ".join(r.thread_id for r in rows)
    click.echo(f"invoice {invoice_number}: paid; payment steps stopped ({threads})")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def demo(obj: Context, as_json: bool) -> None:
    """Replay a shipped sample mailbox; needs no account, no config, no network.

    The sample is the mailbox of Alice Rossi, a freelance web designer in Milan,
    from October to November 2026: prospects, projects and unpaid invoices, an
    out-of-office reply, a bounce, answers that cancel follow-ups. ghostwatch
    replays it day by day up to 27 Nov 2026 09:00 (or --now) and shows what it
    would have done, what awaits a reply, and what comes next. Nothing is sent.
    """
    from ghostwatch.demo import DEMO_NOW, DEMO_TZ, run_demo

    now = obj.clock.now() if isinstance(obj.clock, FixedClock) else DEMO_NOW
    try:
        result = run_demo(now)
    except GhostwatchError as exc:
        _fail(exc)
        return
    threads = [r for r in result.threads if r.message_count]
    threads.sort(key=lambda r: (r.awaiting_since or r.last_activity, r.thread_id))
    items = [_thread_item(r, now) for r in threads]
    if as_json:
        payload = {
            "now": now.isoformat(),
            "timeline": [_event_json(e) for e in result.events],
            "threads": items,
            "upcoming": [step_json(s) for s in result.upcoming],
        }
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    local = now.astimezone(DEMO_TZ)
    click.echo(
        "ghostwatch demo: the mailbox of Alice Rossi <alice@rossi-studio.example>, a web "
        f"designer in Milan,\nreplayed from 1 Oct to {local:%a %d %b %Y %H:%M} (Europe/Rome). "
        "Nothing is sent.\n"
    )
    click.echo("What ghostwatch would have done:")
    _print_timeline(result.events, DEMO_TZ)
    awaiting = [i for i in items if i["state"] == "awaiting_reply"]
    click.echo(
        f"\nAs of {local:%a %d %b %H:%M}, {len(awaiting)} of {len(items)} threads await a reply:"
    )
    for it in awaiting:
        days = it["days_silent"]
        click.echo(
            f"  {days:>3} {'day' if days == 1 else 'days':<4}  {it['counterpart']}  "
            f'"{it["subject"]}"'
        )
        for note in it["notes"]:
            click.echo(f"            - {note}")
    click.echo("\nNext steps:")
    for step in result.upcoming:
        click.echo(
            f"  {step.due_at.astimezone(DEMO_TZ):%a %d %b %H:%M}  {step.counterpart}  "
            f"{step.step} ({_what(step.action, step.template, step.mode)})"
        )
        click.echo(f"      {step.reason}")
    click.echo("\nNot chased, and why:")
    for it in items:
        if it["state"] == "awaiting_reply":
            continue
        why = it["notes"][-1] if it["notes"] else it["state"].replace("_", " ")
        click.echo(f"  {it['subject'][:58]:<58}  {why}")


def _what(action: str, template: str | None, mode: str) -> str:
    if action in ("send", "pause") and template:
        return f"{action} {template}, {'needs your approval' if mode == 'approve' else 'automatic'}"
    return f"{action}, {'needs your approval' if mode == 'approve' else 'automatic'}"


def _event_json(e: Any) -> dict[str, Any]:
    return {
        "at": e.at.isoformat(),
        "type": e.kind,
        "thread_id": e.thread_id,
        "subject": e.subject,
        "counterpart": e.counterpart,
        "step": e.step,
        "action": e.action,
        "template": e.template,
        "mode": e.mode,
        "reason": e.reason,
    }


def _print_timeline(events: Any, tz: Any) -> None:
    if not events:
        click.echo("  nothing")
    for e in events:
        when = e.at.astimezone(tz)
        if e.kind == "cancelled":
            click.echo(f"  {when:%a %d %b %H:%M}  {e.counterpart}  {e.reason}")
            continue
        click.echo(
            f"  {when:%a %d %b %H:%M}  {e.counterpart}  {e.step} "
            f"({_what(e.action, e.template, e.mode)})"
        )
        click.echo(f"      {e.reason}")


@main.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--from", "start", callback=_parse_now, metavar="DATE", help="Start of the replay.")
@click.option("--to", "end", callback=_parse_until, metavar="DATE", help="End of the replay.")
@click.option("--account", "account_name", metavar="NAME", help="Whose mailbox (from the config).")
@click.option("--address", metavar="ADDR", help="Whose mailbox, without a config file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array of events.")
@click.pass_obj
def replay(
    obj: Context,
    source: Path,
    start: datetime | None,
    end: datetime | None,
    account_name: str | None,
    address: str | None,
    as_json: bool,
) -> None:
    """Replay an mbox file or a Maildir with a simulated clock; never sends.

    Prints the timeline of every step ghostwatch would have taken, and of every
    step a reply cancelled, using the policies of the config file (or the shipped
    defaults with --address and no config).
    """
    from ghostwatch.policy import PolicySettings
    from ghostwatch.replay import replay as run_replay

    try:
        if address is not None:
            account = _adhoc_account(address)
            try:
                policy = obj.settings.policy
            except GhostwatchError:
                policy = PolicySettings()
        else:
            try:
                settings = obj.settings
            except ConfigNotFoundError as exc:
                raise ConfigNotFoundError(
                    f"{exc} To replay without one, say whose mailbox it is: --address ADDR."
                ) from None
            if account_name:
                account = settings.account(account_name)
            elif len(settings.accounts) == 1:
                account = settings.accounts[0]
            else:
                raise click.UsageError(
                    "say whose mailbox this is: --account NAME or --address ADDR"
                )
            policy = settings.policy
        result = run_replay(source, account, policy, start=start, end=end)
    except GhostwatchError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(
            json.dumps([_event_json(e) for e in result.events], indent=2, ensure_ascii=False)
        )
        return
    tz = ZoneInfo(policy.defaults.time_zone)
    until = result.end.astimezone(tz)
    click.echo(f"Replay of {source} as {account.address}, until {until:%a %d %b %Y %H:%M}:")
    _print_timeline(result.events, tz)


def _adhoc_account(address: str) -> Any:

    try:
        return AccountSettings.model_validate(
            {
                "name": "replay",
                "address": address,
                "imap": {"host": "localhost", "username": address, "password_env": "UNUSED"},
            }
        )
    except ValueError as exc:
        raise click.BadParameter(
            f"{address!r} is not an email address", param_hint="--address"
        ) from exc


def _thread_item(r: Any, now: datetime) -> dict[str, Any]:
    return {
        "thread_id": r.thread_id,
        "account": r.account,
        "state": r.state,
        "counterpart": r.counterpart,
        "subject": r.subject,
        "awaiting_since": r.awaiting_since.isoformat() if r.awaiting_since else None,
        "days_silent": _days(r.awaiting_since, now) if r.awaiting_since else None,
        "last_outgoing_message_id": r.last_outgoing_message_id,
        "messages": r.message_count,
        "notes": r.notes.split("\n") if r.notes else [],
    }


def _days(since: datetime, now: datetime) -> int:
    return max((now - since).days, 0)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.option("--account", "account_name", metavar="NAME", help="Only this account.")
@click.option("--all", "show_all", is_flag=True, help="Every thread, not just those awaiting.")
@click.pass_obj
def status(obj: Context, as_json: bool, account_name: str | None, show_all: bool) -> None:
    """List threads whose last message is yours and still awaits a reply.

    Reads the store only (run `ghostwatch sync` first); never touches the network.
    """
    from ghostwatch.store import ThreadRow

    try:
        if account_name:
            obj.settings.account(account_name)
        sessions = obj.sessions()
    except GhostwatchError as exc:
        _fail(exc)
        return
    now = obj.clock.now()
    with sessions() as db:
        query = select(ThreadRow)
        if not show_all:
            query = query.where(ThreadRow.awaiting.is_(True))
        if account_name:
            query = query.where(ThreadRow.account == account_name)
        rows = list(db.scalars(query))
    rows.sort(key=lambda r: (r.awaiting_since or r.last_activity, r.thread_id))
    items = [_thread_item(r, now) for r in rows]
    if as_json:
        click.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    if not items:
        click.echo("Nothing awaits a reply." if not show_all else "No threads stored yet.")
        return
    _print_status(items)


def _print_status(items: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False, expand=False)
    for col in ("thread", "account", "counterpart", "subject", "since", "days", "notes"):
        table.add_column(col, overflow="fold")
    for it in items:
        since = it["awaiting_since"][:10] if it["awaiting_since"] else it["state"]
        table.add_row(
            it["thread_id"],
            it["account"],
            it["counterpart"] or "",
            it["subject"][:60],
            since,
            "" if it["days_silent"] is None else str(it["days_silent"]),
            "\n".join(it["notes"]),
        )
    Console(width=max(140, Console().width)).print(table)
    structlog.get_logger().debug("status_printed", rows=len(items))


def _register_outbox_commands() -> None:
    from ghostwatch import init_cli, outbox_cli, run_cli

    for command in (*outbox_cli.COMMANDS, *run_cli.COMMANDS, *init_cli.COMMANDS):
        main.add_command(command)


_register_outbox_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
