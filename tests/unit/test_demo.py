"""The shipped sample mailbox, replayed end to end without any server."""

from __future__ import annotations

import json
import mailbox
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from ghostwatch.cli import main
from ghostwatch.demo import SAMPLE, run_demo
from ghostwatch.replay import ReplayResult

ROME = ZoneInfo("Europe/Rome")


@pytest.fixture(scope="module")
def result() -> ReplayResult:
    return run_demo()


def _steps(result: ReplayResult, counterpart: str) -> list[tuple[str, str]]:
    return [(e.kind, e.step) for e in result.events if e.counterpart == counterpart]


def test_demo_finds_exactly_the_threads_that_await_a_reply(result: ReplayResult) -> None:
    awaiting = {r.counterpart for r in result.threads if r.awaiting}
    assert awaiting == {
        "tom@baker-bikes.example",
        "amministrazione@verdi-costruzioni.example",
        "priya@oldco.example",
        "luca.ferri@ferri-arredamenti.example",
        "mark@northwind.example",
    }


def test_a_silent_prospect_gets_nudge_last_check_in_then_is_closed(result: ReplayResult) -> None:
    assert _steps(result, "tom@baker-bikes.example") == [
        ("step", "nudge"),
        ("step", "last_check_in"),
        ("step", "close"),
    ]


def test_a_reply_cancels_the_pending_nudge(result: ReplayResult) -> None:
    cancelled = [e for e in result.events if e.counterpart == "giulia@pasticceria-conti.example"]
    assert cancelled
    assert all(e.kind == "cancelled" for e in cancelled)
    assert "answered by giulia@pasticceria-conti.example" in cancelled[0].reason


def test_a_bounce_halts_the_thread_with_a_check_address_task(result: ReplayResult) -> None:
    assert _steps(result, "priya@oldco.example") == [("step", "check_address")]
    assert not [s for s in result.upcoming if s.counterpart == "priya@oldco.example"]


def test_an_out_of_office_moves_the_project_nudge_past_the_return_date(
    result: ReplayResult,
) -> None:
    [luca] = [s for s in result.upcoming if s.counterpart == "luca.ferri@ferri-arredamenti.example"]
    assert luca.step == "nudge"
    assert luca.due_at.astimezone(ROME) == datetime(2026, 12, 1, 9, 0, tzinfo=ROME)
    assert "30 novembre" in luca.reason


def test_an_unpaid_invoice_gets_payment_steps_and_the_30_day_notice_next(
    result: ReplayResult,
) -> None:
    verdi = "amministrazione@verdi-costruzioni.example"
    assert ("step", "resend_with_late_fee") in _steps(result, verdi)
    [nxt] = [s for s in result.upcoming if s.counterpart == verdi]
    assert nxt.step == "notice_30"
    assert nxt.attach_invoice
    assert nxt.due_at.astimezone(ROME) == datetime(2026, 11, 30, 9, 0, tzinfo=ROME)


def test_a_paid_invoice_stops_its_steps(result: ReplayResult) -> None:
    acme = _steps(result, "accounts@acme.example")
    assert acme[-1] == ("cancelled", "notice_30")
    assert not [s for s in result.upcoming if s.counterpart == "accounts@acme.example"]


def test_never_two_steps_for_one_thread_on_one_day(result: ReplayResult) -> None:
    days = Counter((e.thread_id, e.at.date()) for e in result.events if e.kind == "step")
    assert max(days.values()) == 1


def test_every_step_falls_in_the_send_window(result: ReplayResult) -> None:
    for e in result.events:
        if e.kind == "step" and e.action == "send":
            local = e.at.astimezone(ROME)  # every demo client is in CET/GMT/IST
            assert local.weekday() < 5
            assert 8 <= local.hour < 17


def test_demo_at_an_earlier_instant_sees_only_what_had_arrived() -> None:
    earlier = run_demo(datetime(2026, 11, 18, 12, 0, tzinfo=UTC))
    awaiting = {r.counterpart for r in earlier.threads if r.awaiting}
    assert "mark@northwind.example" not in awaiting  # his proposal went out on 19 Nov
    assert "priya@oldco.example" in awaiting


def test_demo_cli_json_needs_no_config(tmp_path: Path) -> None:
    runner = CliRunner(env={"GHOSTWATCH_CONFIG": str(tmp_path / "absent.toml")})
    done = runner.invoke(main, ["demo", "--json"])
    assert done.exit_code == 0, done.output
    payload = json.loads(done.output)
    assert sum(1 for t in payload["threads"] if t["state"] == "awaiting_reply") == 5
    for step in payload["upcoming"]:
        for key in ("thread_id", "step", "action", "template", "mode", "due_at", "reason"):
            assert key in step


def test_replay_cli_without_config_uses_the_default_policies(tmp_path: Path) -> None:
    runner = CliRunner(env={"GHOSTWATCH_CONFIG": str(tmp_path / "absent.toml")})
    done = runner.invoke(
        main,
        ["replay", str(SAMPLE), "--address", "alice@rossi-studio.example",
         "--to", "2026-11-27", "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    events = json.loads(done.output)
    assert {"step", "cancelled"} <= {e["type"] for e in events}
    assert all(e["at"] <= "2026-11-28" for e in events)


def test_replay_cli_refuses_a_bad_address(tmp_path: Path) -> None:
    runner = CliRunner(env={"GHOSTWATCH_CONFIG": str(tmp_path / "absent.toml")})
    done = runner.invoke(main, ["replay", str(SAMPLE), "--address", "nobody"])
    assert done.exit_code == 2
    assert "not an email address" in done.output


def test_replay_cli_without_config_or_address_says_how_to_replay(tmp_path: Path) -> None:
    runner = CliRunner(env={"GHOSTWATCH_CONFIG": str(tmp_path / "absent.toml")})
    done = runner.invoke(main, ["replay", str(SAMPLE)])
    assert done.exit_code == 1
    assert "no configuration file found" in done.output
    assert "--address ADDR" in done.output


def test_sample_mailbox_is_well_formed() -> None:
    box = mailbox.mbox(SAMPLE, create=False)
    ids = [m["Message-ID"] for m in box]
    assert len(ids) == len(set(ids)) == 40
