"""``ghostwatch run``: the daemon on the command line. Registered by :mod:`ghostwatch.cli`."""

from __future__ import annotations

import click

from ghostwatch.cliutil import EXIT_CONFIG, Context, _fail
from ghostwatch.clock import FixedClock, OffsetClock
from ghostwatch.errors import GhostwatchError


@click.command("run")
@click.option("--once", is_flag=True, help="One full pass for every account, then exit (cron).")
@click.option("--dry-run", is_flag=True, help="Send nothing; log what would go out.")
@click.pass_obj
def run(obj: Context, once: bool, dry_run: bool) -> None:
    """Serve every configured account until stopped (systemd, or a terminal).

    Each pass syncs the account, settles interrupted sends, queues the steps that are
    due and sends what may go (see `ghostwatch send --help`). Passes run every
    [daemon] poll_minutes, and within seconds of new mail in an INBOX (IMAP IDLE).
    SIGTERM finishes the pass in flight and exits 0; SIGHUP reloads the config (an
    invalid one is refused and the running one kept). Only one `ghostwatch run` may
    use a database at a time. With --now ISO the clock starts at that instant and
    runs on from there.
    """
    from ghostwatch.daemon import run_once, serve
    from ghostwatch.instance import AlreadyRunningError, InstanceLock

    try:
        settings = obj.settings
    except GhostwatchError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_CONFIG) from exc
    clock = obj.clock
    if isinstance(clock, FixedClock):
        # --now: a starting point; the daemon's time must still move.
        clock = OffsetClock(clock.current)
    dry = dry_run or settings.sending.dry_run
    try:
        if once:
            with InstanceLock(settings.database.url):
                from ghostwatch.store import open_store

                results = run_once(open_store(settings.database.url), settings, clock, dry_run=dry)
            failed = [r for r in results if not r.ok]
            for r in results:
                sent = sum(1 for o in r.outcomes if o.what == "sent")
                queued = sum(1 for o in r.outcomes if o.what == "queued")
                state = "ok" if r.ok else f"FAILED: {r.error}"
                click.echo(f"{r.account}: {state}; {queued} queued, {sent} sent")
            raise SystemExit(1 if failed else 0)
        raise SystemExit(serve(settings, obj.settings_path, clock, dry_run=dry))
    except AlreadyRunningError as exc:
        _fail(exc)


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.pass_obj
def doctor(obj: Context, as_json: bool) -> None:
    """Check that everything is in place: config, database, each account's IMAP and
    SMTP login (TLS verified), folders, IDLE. Sends nothing; exit 1 on any FAIL."""
    import json

    from ghostwatch.doctor import Check, Verdict, run_checks

    try:
        settings = obj.settings
    except GhostwatchError as exc:
        if as_json:
            click.echo(json.dumps([{"check": "config", "verdict": "FAIL", "detail": str(exc)}]))
        else:
            click.echo(f"FAIL  config  {exc}")
        raise SystemExit(EXIT_CONFIG) from exc
    checks = [Check("config", Verdict.PASS, f"{obj.settings_path}: valid")]
    checks += run_checks(settings, obj.settings_path, obj.clock.now())
    if as_json:
        click.echo(json.dumps(
            [{"check": c.what, "verdict": c.verdict.value, "detail": c.detail} for c in checks],
            indent=2,
        ))  # fmt: skip
    else:
        width = max(len(c.what) for c in checks) if checks else 0
        for c in checks:
            click.echo(f"{c.verdict.value}  {c.what:<{width}}  {c.detail}")
    failed = sum(1 for c in checks if c.verdict is Verdict.FAIL)
    if not as_json:
        warned = sum(1 for c in checks if c.verdict is Verdict.WARN)
        click.echo(f"{failed} failed, {warned} warning(s)" if failed or warned else "all good")
    raise SystemExit(1 if failed else 0)


COMMANDS = (run, doctor)
