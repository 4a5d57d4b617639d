"""The policy engine over mail that real Dovecot and Postfix produced, driven from
the CLI as a user would: sync, plan, explain, track, paid, stop."""

from __future__ import annotations

import email.utils
import json
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbuilder import make_mail
from mailenv import LONG_AGO, Env, _seq, make_env, run_cli, write_config
from mailstack import MailStack

pytestmark = pytest.mark.mailstack
ROME = ZoneInfo("Europe/Rome")


@pytest.fixture
def env(mailstack: MailStack, tmp_path: Path) -> Env:
    return make_env(mailstack, tmp_path)


def _config(env: Env, tmp_path: Path) -> Path:
    extra = '[defaults]\ntime_zone = "Europe/Rome"\ncountry = "IT"\n'
    return write_config(env, tmp_path / "config.toml", extra=extra)


gw = run_cli


def _plan(config: Path, now: str) -> list[dict[str, object]]:
    done = gw(config, "--now", now, "plan", "--json")
    assert done.returncode == 0, done.stderr
    items: list[dict[str, object]] = json.loads(done.stdout)
    return items


def test_a_sieve_vacation_reply_postpones_the_next_step(env: Env, tmp_path: Path) -> None:
    """A real Sieve vacation reply (no return date in it) is not an answer: the nudge
    waits the configured 3 business days after it instead of going out now."""
    client = f"away{next(_seq)}@client.test"
    env.stack.add_user(client, "pw")
    env.stack.set_vacation(client, "Out of office", "I am away, with limited access to email.")
    raw = make_mail(frm=env.address, to=client, subject="Proposal", msgid="<pv1@example.test>",
                    date=LONG_AGO)  # fmt: skip
    env.stack.append(env.address, "Sent", raw, LONG_AGO)
    env.stack.deliver(env.address, [client], raw)
    [auto] = env.stack.wait_for_messages(env.address, "INBOX", 1)
    auto_at = email.utils.parsedate_to_datetime(BytesHeaderParser().parsebytes(auto)["Date"])
    now = (auto_at + timedelta(hours=1)).isoformat()
    config = _config(env, tmp_path)
    assert gw(config, "--now", now, "sync").returncode == 0
    thread_id = env.thread_of("<pv1@example.test>").thread_id
    [step] = _plan(config, now)
    assert step["thread_id"] == thread_id
    assert step["step"] == "nudge"
    assert datetime.fromisoformat(str(step["due_at"])) >= auto_at + timedelta(days=3)
    explained = gw(config, "--now", now, "explain", thread_id)
    assert explained.returncode == 0, explained.stderr
    assert "auto-reply" in explained.stdout


def test_an_out_of_office_return_date_moves_the_nudge_past_it(env: Env, tmp_path: Path) -> None:
    sent = datetime(2026, 11, 18, 10, 0, tzinfo=ROME)
    raw = make_mail(frm=env.address, to="luca@client.test", subject="Mockup",
                    msgid="<oof1@example.test>", date=sent)  # fmt: skip
    env.stack.append(env.address, "Sent", raw, sent)
    auto = make_mail(
        frm="luca@client.test", to=env.address, subject="Risposta automatica: Fuori sede",
        msgid="<oof2@client.test>", date=sent + timedelta(minutes=1),
        in_reply_to="<oof1@example.test>", headers={"Auto-Submitted": "auto-replied"},
        body="Sono fuori ufficio fino al 30 novembre con accesso limitato alla posta.",
    )  # fmt: skip
    env.stack.append(env.address, "INBOX", auto, sent + timedelta(minutes=1))
    config = _config(env, tmp_path)
    now = "2026-11-20T10:00:00+01:00"
    assert gw(config, "--now", now, "sync").returncode == 0
    [step] = _plan(config, now)
    assert step["step"] == "nudge"
    # Without the auto-reply: 5 business days after Wed 18 Nov, i.e. Wed 25 Nov.
    assert step["due_at"] == "2026-12-01T09:00:00+01:00"
    assert "30 novembre" in str(step["reason"])


def test_a_postfix_bounce_halts_the_thread(env: Env, tmp_path: Path) -> None:
    raw = make_mail(frm=env.address, to="gone@client.test", subject="Quote",
                    msgid="<pb1@example.test>", date=LONG_AGO)  # fmt: skip
    env.stack.append(env.address, "Sent", raw, LONG_AGO)
    env.stack.deliver(env.address, ["gone@client.test"], raw)
    [bounce] = env.stack.wait_for_messages(env.address, "INBOX", 1)
    bounced_at = email.utils.parsedate_to_datetime(BytesHeaderParser().parsebytes(bounce)["Date"])
    now = (bounced_at + timedelta(hours=1)).isoformat()
    config = _config(env, tmp_path)
    assert gw(config, "--now", now, "sync").returncode == 0
    thread_id = env.thread_of("<pb1@example.test>").thread_id
    [step] = _plan(config, now)
    assert step["step"] == "check_address"
    assert step["action"] == "task"
    explained = gw(config, "--now", now, "explain", thread_id)
    assert "bounced" in explained.stdout


def test_track_paid_and_stop_from_the_command_line(env: Env, tmp_path: Path) -> None:
    sent = datetime(2026, 10, 1, 10, 0, tzinfo=ROME)
    env.stack.append(env.address, "Sent", make_mail(
        frm=env.address, to="ap@client.test", subject="Invoice 2026-014",
        msgid="<inv1@example.test>", date=sent), sent)  # fmt: skip
    env.stack.append(env.address, "Sent", make_mail(
        frm=env.address, to="mark@agency.test", subject="Proposal",
        msgid="<pro1@example.test>", date=sent), sent)  # fmt: skip
    config = _config(env, tmp_path)
    now = "2026-12-02T10:00:00+01:00"
    assert gw(config, "--now", now, "sync").returncode == 0
    invoice_thread = env.thread_of("<inv1@example.test>").thread_id
    prospect_thread = env.thread_of("<pro1@example.test>").thread_id

    bad = gw(config, "track", invoice_thread, "--stage", "nonsense")
    assert bad.returncode == 2
    assert "no policy 'nonsense'" in bad.stderr
    done = gw(config, "--now", now, "track", invoice_thread, "--stage", "payment",
              "--invoice", "2026-014", "--amount", "1200.00", "--currency", "eur",
              "--due", "2026-10-31")  # fmt: skip
    assert done.returncode == 0, done.stderr
    steps = {s["thread_id"]: s for s in _plan(config, now)}
    assert steps[invoice_thread]["stage"] == "payment"
    assert steps[prospect_thread]["stage"] == "prospect"

    assert gw(config, "--now", now, "paid", "2026-014").returncode == 0
    assert gw(config, "--now", now, "stop", prospect_thread).returncode == 0
    assert _plan(config, now) == []
    unknown = gw(config, "paid", "1999-001")
    assert unknown.returncode == 1
    assert "no thread tracks invoice" in unknown.stderr
    explained = gw(config, "--now", now, "explain", prospect_thread)
    assert "stopped" in explained.stdout


def test_templates_render_previews_the_final_notice_for_a_tracked_invoice(
    env: Env, tmp_path: Path
) -> None:
    sent = datetime(2026, 8, 3, 10, 0, tzinfo=ROME)
    env.stack.append(env.address, "Sent", make_mail(
        frm=env.address, to="ap@client.test", subject="Fattura 2026-014 - Sito vetrina",
        msgid="<fn1@example.test>", date=sent), sent)  # fmt: skip
    profile = (
        '[profile]\nname = "Alice Rossi"\nphone = "+39 02 555 0101"\n'
        'payment_details = "IBAN IT60 X054 2811 1010 0000 0123 456"\n'
        '[[clients]]\nname = "Verdi Costruzioni"\ndomains = ["client.test"]\nlocale = "it"\n'
    )
    config = write_config(env, tmp_path / "config.toml", extra=profile)
    now = "2026-11-10T10:00:00+01:00"
    assert gw(config, "--now", now, "sync").returncode == 0
    thread_id = env.thread_of("<fn1@example.test>").thread_id
    tracked = gw(config, "--now", now, "track", thread_id, "--stage", "payment", "--invoice",
                 "2026-014", "--amount", "1200.00", "--currency", "EUR", "--due", "2026-08-31")  # fmt: skip
    assert tracked.returncode == 0, tracked.stderr
    done = gw(config, "--now", now, "templates", "render", "final_notice", "--thread", thread_id)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "To: ap@client.test" in out
    assert "Subject: Re: Fattura 2026-014 - Sito vetrina" in out
    assert "Language: it" in out
    assert "2026-014" in out
    assert "1.200,00\xa0€" in out  # the balance, formatted for Italy
    assert "31 agosto 2026" in out  # the original due date
    assert "71" in out  # days overdue on 10 Nov
    assert "IBAN IT60 X054 2811 1010 0000 0123 456" in out
    assert "+39 02 555 0101" in out
    assert env.address in out


def test_templates_render_refuses_an_unknown_step(env: Env, tmp_path: Path) -> None:
    sent = datetime(2026, 11, 2, 10, 0, tzinfo=ROME)
    env.stack.append(env.address, "Sent", make_mail(
        frm=env.address, to="ap@client.test", subject="Hello", msgid="<un1@example.test>",
        date=sent), sent)  # fmt: skip
    config = write_config(env, tmp_path / "config.toml")
    assert gw(config, "--now", "2026-11-10T10:00:00+01:00", "sync").returncode == 0
    thread_id = env.thread_of("<un1@example.test>").thread_id
    done = gw(config, "templates", "render", "no_such_step", "--thread", thread_id)
    assert done.returncode == 1
    assert "'no_such_step' is neither a step of policy 'prospect'" in done.stderr
