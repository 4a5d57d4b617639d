"""Unit tests for ghostwatch.engine: which follow-up is next, when, and why.

Every clock is fixed. Test ids name the playbook rule they pin. Unless a test says
otherwise, the freelancer works from Rome with Italian holidays, and 2026-11-17 (a
Tuesday) is the day of the unanswered message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghostwatch import engine
from ghostwatch.engine import (
    AutoReply,
    Invoice,
    PlannedStep,
    StepRecord,
    ThreadFacts,
    calendar_for,
    compute_late_fee,
    explain,
    next_step,
    plan,
    resolve_stage,
)
from ghostwatch.history import (
    is_habitually_slow,
    late_payment_history,
    reply_latency_stats,
)
from ghostwatch.judgment import ThreadState, Verdict
from ghostwatch.policy import DEFAULT_POLICIES, Contract, PolicySettings

ROME = ZoneInfo("Europe/Rome")
NEW_YORK = ZoneInfo("America/New_York")
CLIENT = "priya@acme.example"


def rome(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ROME)


def ny(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=NEW_YORK)


def same_instant(a: datetime, b: datetime) -> bool:
    return a.astimezone(UTC) == b.astimezone(UTC)


def awaiting(since: datetime, to: str = CLIENT) -> Verdict:
    return Verdict(
        ThreadState.AWAITING_REPLY,
        subject="Website redesign",
        last_activity=since,
        message_count=1,
        awaiting_since=since,
        counterpart=to,
        counterparts=(to,),
    )


def facts(since: datetime, thread_id: str = "t1", **kw: Any) -> ThreadFacts:
    verdict = kw.pop("verdict", None) or awaiting(since, kw.pop("to", CLIENT))
    return ThreadFacts(thread_id, "work", verdict.subject, verdict, **kw)


def sent(step: str, at: datetime, outcome: str = "sent") -> StepRecord:
    return StepRecord(step, at, outcome)


def make_settings(**kw: Any) -> PolicySettings:
    data: dict[str, Any] = {"defaults": {"time_zone": "Europe/Rome", "country": "IT"}}
    data.update(kw)
    return PolicySettings.model_validate(data)


IT = make_settings()
NO_HOLIDAYS = make_settings(defaults={"time_zone": "Europe/Rome"})
ACME_CONTRACT = {"late_fee_amount": 40, "late_fee_percent": 8, "kill_fee_after": "30d"}
ACME = make_settings(
    clients=[
        {
            "name": "Acme",
            "domains": ["acme.example"],
            "phone": "+39 02 1234567",
            "contract": ACME_CONTRACT,
        }
    ]
)
SENT_ON = rome(2026, 11, 17, 10)  # Tuesday


def due(f: ThreadFacts, now: datetime, s: PolicySettings = IT) -> PlannedStep:
    step = next_step(f, s, now)
    assert step is not None, explain(f, s, now).lines
    return step


# --- the Tuesday rule (PLAYBOOK stage 2) -------------------------------------------------------


@pytest.mark.parametrize(
    "anchor",
    [
        pytest.param(rome(2026, 11, 16, 10), id="tuesday-rule-from-monday"),
        pytest.param(rome(2026, 11, 17, 10), id="tuesday-rule-from-tuesday"),
        pytest.param(rome(2026, 11, 18, 10), id="tuesday-rule-from-wednesday"),
        pytest.param(rome(2026, 11, 19, 10), id="tuesday-rule-from-thursday"),
        pytest.param(rome(2026, 11, 20, 16, 59), id="tuesday-rule-from-friday"),
        pytest.param(rome(2026, 11, 21, 11), id="tuesday-rule-from-saturday"),
        pytest.param(rome(2026, 11, 22, 23, 30), id="tuesday-rule-from-sunday-night"),
    ],
)
def test_project_nudge_is_on_tuesday_of_the_following_week(anchor: datetime) -> None:
    step = due(facts(anchor, stage="project"), anchor)
    assert step.step == "nudge" and step.template == "project_nudge"
    assert step.due_at == rome(2026, 11, 24, 9)
    assert step.reason.startswith("Tuesday of the following week after your last message")


@pytest.mark.parametrize(
    ("settings_", "expected"),
    [
        pytest.param(IT, rome(2026, 12, 9, 9), id="tuesday-rule-immacolata-moves-to-wednesday"),
        pytest.param(NO_HOLIDAYS, rome(2026, 12, 8, 9), id="tuesday-rule-without-holidays"),
    ],
)
def test_tuesday_rule_skips_a_public_holiday(settings_: PolicySettings, expected: datetime) -> None:
    """PLAYBOOK: never send on public holidays; 2026-12-08 is a Tuesday holiday in Italy."""
    anchor = rome(2026, 12, 3, 15)
    assert due(facts(anchor, stage="project"), anchor, settings_).due_at == expected


# --- business days, holidays, DST --------------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "expected"),
    [
        pytest.param(rome(2026, 11, 17, 10), rome(2026, 11, 24, 10), id="5-business-days"),
        pytest.param(rome(2026, 12, 3, 11), rome(2026, 12, 11, 11), id="skips-immacolata"),
        pytest.param(rome(2026, 12, 21, 11), rome(2026, 12, 29, 11), id="skips-christmas"),
        pytest.param(rome(2026, 11, 17, 18), rome(2026, 11, 25, 9), id="evening-to-next-window"),
        pytest.param(rome(2026, 11, 21, 10), rome(2026, 11, 27, 10), id="saturday-anchor"),
    ],
)
def test_prospect_nudge_after_5_business_days(anchor: datetime, expected: datetime) -> None:
    step = due(facts(anchor), anchor)
    assert (step.step, step.template, step.index) == ("nudge", "prospect_nudge", 0)
    assert step.due_at == expected


def test_dst_weekend_keeps_local_wall_time() -> None:
    """Europe/Rome leaves summer time on 2026-10-25: 10:00 stays 10:00 local."""
    anchor = rome(2026, 10, 23, 10)  # Friday, CEST
    step = due(facts(anchor), anchor)
    assert step.due_at == rome(2026, 10, 30, 10)
    assert step.due_at.utcoffset() == timedelta(hours=1)
    assert same_instant(step.due_at, datetime(2026, 10, 30, 9, tzinfo=UTC))


def test_dst_weekend_tuesday_rule_opens_at_9_local() -> None:
    anchor = rome(2026, 10, 22, 10)  # Thursday, CEST
    step = due(facts(anchor, stage="project"), anchor)
    assert same_instant(step.due_at, datetime(2026, 10, 27, 8, tzinfo=UTC))


def test_new_york_client_gets_the_new_york_window_and_holidays() -> None:
    """PLAYBOOK: never at night, on weekends or public holidays in the client's time zone."""
    s = make_settings(
        clients=[{"name": "Initech", "domains": ["initech.example"],
                  "time_zone": "America/New_York", "country": "US"}]
    )  # fmt: skip
    anchor = rome(2026, 11, 20, 18)  # Friday evening in Rome, 12:00 in New York
    f = facts(anchor, to="bill@initech.example")
    assert calendar_for(f, s).tz == "America/New_York"
    step = due(f, anchor, s)
    # 5 business days in New York skip Thanksgiving (Thursday 26 November).
    assert step.due_at == ny(2026, 11, 30, 12)
    assert step.due_at.tzinfo == NEW_YORK
    project = due(facts(anchor, to="bill@initech.example", stage="project"), anchor, s)
    assert project.due_at == ny(2026, 11, 24, 9)


def test_overdue_step_waits_for_the_next_window() -> None:
    """A step that fell due while nothing ran goes out at the next window, not at night."""
    step = due(facts(SENT_ON), rome(2026, 11, 28, 22))  # Saturday night
    assert step.due_at == rome(2026, 11, 30, 9)
    assert "due since Tue 24 Nov 10:00" in step.reason


# --- steps already done (PLAYBOOK: never send the same step twice) -----------------------------


@pytest.mark.parametrize(
    ("done", "expected_step", "expected_due"),
    [
        pytest.param((), "nudge", rome(2026, 11, 24, 10), id="nothing-done-first-step"),
        pytest.param((sent("nudge", rome(2026, 11, 24, 10)),), "last_check_in",
                     rome(2026, 12, 1, 10), id="last-check-in-a-week-after-the-first"),
        pytest.param((sent("nudge", rome(2026, 11, 24, 10)),
                      sent("last_check_in", rome(2026, 12, 1, 10))), "close",
                     rome(2026, 12, 9, 9), id="close-a-week-after-last-check-in-not-on-a-holiday"),
        pytest.param((sent("nudge", rome(2026, 11, 24, 10), "skipped"),), "last_check_in",
                     rome(2026, 12, 1, 10), id="skipped-counts-as-done"),
        pytest.param((sent("nudge", rome(2026, 11, 24, 10), "failed"),), "nudge",
                     rome(2026, 11, 24, 10), id="failed-does-not-count"),
        pytest.param((sent("last_check_in", rome(2026, 11, 26, 10)),), "close",
                     rome(2026, 12, 3, 10), id="never-goes-back-to-an-earlier-step"),
    ],
)  # fmt: skip
def test_steps_done_are_never_planned_again(
    done: tuple[StepRecord, ...], expected_step: str, expected_due: datetime
) -> None:
    step = due(facts(SENT_ON, steps_done=done), SENT_ON)
    assert (step.step, step.due_at) == (expected_step, expected_due)
    assert step.step not in {r.step for r in done if r.outcome in ("sent", "done", "skipped")}


def test_closed_thread_gets_nothing() -> None:
    """PLAYBOOK stage 1: after the last check-in the thread is closed as "moved on"."""
    done = (
        sent("nudge", rome(2026, 11, 24, 10)),
        sent("last_check_in", rome(2026, 12, 1, 10)),
        sent("close", rome(2026, 12, 9, 10), "done"),
    )
    f = facts(SENT_ON, steps_done=done)
    assert next_step(f, IT, rome(2027, 1, 15)) is None
    e = explain(f, IT, rome(2027, 1, 15))
    assert (e.status, e.lines[0]) == ("closed", "closed: moved on (Wed 9 Dec 2026)")


def test_close_step_goes_through_on_its_own() -> None:
    done = (sent("nudge", rome(2026, 11, 24, 10)), sent("last_check_in", rome(2026, 12, 1, 10)))
    step = due(facts(SENT_ON, steps_done=done), SENT_ON)
    assert (step.action, step.mode, step.template) == ("close", "auto", None)


def test_firm_last_check_in_waits_for_approval() -> None:
    step = due(facts(SENT_ON, steps_done=(sent("nudge", rome(2026, 11, 24, 10)),)), SENT_ON)
    assert (step.template, step.mode) == ("prospect_last_check_in", "approve")


# --- answered, stopped, snoozed, paid ------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "notes", "first_line"),
    [
        pytest.param(ThreadState.ANSWERED, ("answered by priya@acme.example on 2026-11-18",),
                     "not chased: answered by priya@acme.example on 2026-11-18",
                     id="reply-in-thread-cancels"),
        pytest.param(ThreadState.ANSWERED_ELSEWHERE,
                     ("someone at acme.example wrote on 2026-11-19 in another thread (t9)",),
                     "not chased: someone at acme.example wrote on 2026-11-19 in another thread "
                     "(t9)", id="colleague-elsewhere-cancels"),
        pytest.param(ThreadState.OWED_BY_USER, (),
                     "not chased: the last word is theirs: you owe the reply", id="you-owe-reply"),
        pytest.param(ThreadState.AUTOMATED_ONLY, (),
                     "not chased: only automated mail (newsletters, notifications, bounces)",
                     id="newsletter-never-chased"),
    ],
)  # fmt: skip
def test_thread_not_awaiting_a_reply_gets_nothing(
    state: ThreadState, notes: tuple[str, ...], first_line: str
) -> None:
    """PLAYBOOK principle: never nudge someone who has answered."""
    verdict = Verdict(state, "Quote", SENT_ON, 2, counterpart=CLIENT, notes=notes)
    f = facts(SENT_ON, verdict=verdict, steps_done=(sent("nudge", rome(2026, 11, 24, 10)),))
    now = rome(2026, 12, 15, 10)
    assert next_step(f, IT, now) is None
    assert plan([f], IT, now) == []
    assert explain(f, IT, now).lines[0] == first_line


def test_stopped_thread_gets_nothing() -> None:
    f = facts(SENT_ON, stopped="they phoned, project cancelled")
    assert next_step(f, IT, rome(2026, 12, 1, 10)) is None
    e = explain(f, IT, rome(2026, 12, 1, 10))
    assert (e.status, e.lines) == ("stopped", ("stopped by you: they phoned, project cancelled",))


def test_snooze_moves_the_step_to_the_window_after_it() -> None:
    f = facts(SENT_ON, snoozed_until=rome(2026, 12, 5, 12))  # a Saturday
    step = due(f, SENT_ON)
    assert step.due_at == rome(2026, 12, 7, 9)
    e = explain(f, IT, SENT_ON)
    assert e.status == "snoozed"
    assert e.lines[0].startswith("snoozed until Sat 5 Dec 12:00; then prospect step 1 of 3")


def test_snooze_in_the_past_changes_nothing() -> None:
    f = facts(SENT_ON, snoozed_until=rome(2026, 11, 18, 12))
    assert due(f, SENT_ON).due_at == rome(2026, 11, 24, 10)


def test_step_level_snooze_record_postpones_that_step() -> None:
    f = facts(SENT_ON, steps_done=(sent("nudge", SENT_ON, "snoozed:2026-11-30T15:00:00+01:00"),))
    step = due(f, SENT_ON)
    assert (step.step, step.due_at) == ("nudge", rome(2026, 11, 30, 15))


def test_paid_invoice_stops_every_payment_step() -> None:
    invoice = Invoice("2026-014", Decimal(1000), "EUR", date(2026, 10, 1), rome(2026, 11, 20, 9))
    f = facts(SENT_ON, stage="payment", invoice=invoice)
    assert next_step(f, IT, rome(2026, 12, 1)) is None
    e = explain(f, IT, rome(2026, 12, 1))
    assert (e.status, e.lines[0]) == ("paid", "paid on Fri 20 Nov: payment steps stopped")


def test_payment_seen_stops_every_payment_step() -> None:
    invoice = Invoice("2026-014", Decimal(1000), "EUR", date(2026, 10, 1))
    f = facts(SENT_ON, stage="payment", invoice=invoice, payment_seen_at=rome(2026, 11, 19, 9))
    assert next_step(f, IT, rome(2026, 12, 1)) is None


# --- out-of-office auto-replies (PLAYBOOK: wait until their return date) -----------------------

OOF_AT = rome(2026, 11, 20, 10)  # Friday after the Tuesday message


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        pytest.param("Out of Office", "I am out of the office until 27 November with limited "
                     "access to email.", rome(2026, 11, 30, 9), id="en-until-back-next-monday"),
        pytest.param("Annual leave", "I'm on annual leave and will be back on Wednesday 2nd "
                     "December.", rome(2026, 12, 2, 9), id="en-back-on"),
        pytest.param("Out of Office", "I am out of the office until 7 December.",
                     rome(2026, 12, 9, 9), id="en-back-on-a-holiday-moves-to-next-business-day"),
        pytest.param("Fuori ufficio", "Buongiorno,\nsono fuori ufficio fino al 4 dicembre con "
                     "accesso limitato alla posta.", rome(2026, 12, 7, 9),
                     id="it-fino-al-back-on-saturday-moves-to-monday"),
        pytest.param("Assente", "Grazie per la mail. Rientrerò il 3 dicembre.",
                     rome(2026, 12, 3, 9), id="it-rientrero-il"),
        pytest.param("Abwesend", "Vielen Dank für Ihre Nachricht. Ich bin bis 1. Dezember nicht "
                     "im Büro.", rome(2026, 12, 2, 9), id="de-bis"),
        pytest.param("Abwesend", "Ich bin bis zum 01.12.2026 nicht erreichbar.",
                     rome(2026, 12, 2, 9), id="de-bis-zum-numeric"),
        pytest.param("Sabbatical", "I am on sabbatical and will be back on 15 February 2027.",
                     rome(2026, 12, 21, 9), id="return-capped-at-30-days"),
    ],
)  # fmt: skip
def test_auto_reply_return_date_postpones_the_step(
    subject: str, body: str, expected: datetime
) -> None:
    f = facts(SENT_ON, auto_replies=(AutoReply(OOF_AT, body, subject),))
    step = due(f, SENT_ON)
    assert step.step == "nudge"
    assert step.due_at == expected
    assert "auto-reply" in step.reason
    e = explain(f, IT, SENT_ON)
    assert e.status == "out_of_office"
    assert e.lines[0].startswith("not chased: auto-reply")
    when = f"{expected:%a} {expected.day} {expected:%b %H:%M}"
    assert e.lines[0].endswith(f"; next step moves to {when}")


def test_auto_reply_return_before_the_step_changes_nothing() -> None:
    f = facts(SENT_ON, auto_replies=(AutoReply(OOF_AT, "I am back on Monday 23 November.", "OOO"),))
    step = due(f, SENT_ON)
    assert step.due_at == rome(2026, 11, 24, 10)
    assert "auto-reply" not in step.reason


def test_auto_reply_without_a_date_waits_3_business_days() -> None:
    at = rome(2026, 11, 23, 8)  # Monday before the Tuesday nudge
    body = "Thank you for your message. I am currently away with limited access to email."
    f = facts(SENT_ON, stage="project", auto_replies=(AutoReply(at, body, "Out of office"),))
    step = due(f, SENT_ON)
    assert step.due_at == rome(2026, 11, 26, 9)  # Thursday, at the window's opening
    assert "gives no return date: waiting 3 business days" in step.reason


def test_auto_reply_before_the_last_message_is_ignored() -> None:
    old = AutoReply(rome(2026, 11, 10, 9), "I am out of the office until 10 December.", "OOO")
    assert due(facts(SENT_ON, auto_replies=(old,)), SENT_ON).due_at == rome(2026, 11, 24, 10)


# --- bounces and addresses (PLAYBOOK stage 2: the first suspect) -------------------------------


def test_bounce_halts_with_a_check_address_task() -> None:
    f = facts(
        SENT_ON,
        to="priya@oldco.example",
        bounced_addresses=("priya@oldco.example",),
        known_addresses=("priya@oldco.example", "priya@newco.example", "p.rossi@gmail.com"),
    )
    now = rome(2026, 11, 17, 18)
    step = due(f, now)
    assert (step.step, step.action, step.task, step.mode, step.index) == (
        "check_address",
        "task",
        "check_address",
        "approve",
        -1,
    )
    assert step.template is None
    assert step.due_at == rome(2026, 11, 18, 9)
    assert any("priya@newco.example, p.rossi@gmail.com" in line for line in step.checklist)
    e = explain(f, IT, now)
    assert e.status == "halted"
    assert e.lines[0] == (
        "stopped: bounced (priya@oldco.example); task: check the address "
        "(other known: priya@newco.example, p.rossi@gmail.com)"
    )


def test_bounce_task_done_leaves_the_thread_halted() -> None:
    f = facts(
        SENT_ON,
        bounced_addresses=(CLIENT,),
        steps_done=(sent("check_address", rome(2026, 11, 18, 9), "done"),),
    )
    assert next_step(f, IT, rome(2026, 12, 15)) is None
    assert explain(f, IT, rome(2026, 12, 15)).status == "halted"


def test_bounce_of_someone_else_does_not_halt() -> None:
    f = facts(SENT_ON, bounced_addresses=("other@acme.example",))
    assert due(f, SENT_ON).step == "nudge"


def test_address_mismatch_task_comes_before_the_send() -> None:
    f = facts(SENT_ON, counterpart_last_wrote_from="priya@newco.example")
    step = due(f, SENT_ON)
    assert (step.step, step.action, step.task, step.index) == (
        "address_mismatch",
        "task",
        "address_mismatch",
        -1,
    )
    assert step.due_at == SENT_ON
    assert step.checklist[0] == f"we write to {CLIENT}; they last wrote from priya@newco.example"
    assert "nudge" in step.checklist[-1] and "Tue 24 Nov 10:00" in step.checklist[-1]


def test_address_mismatch_task_is_planned_once() -> None:
    done = (sent("address_mismatch", rome(2026, 11, 18, 9), "done"),)
    f = facts(SENT_ON, counterpart_last_wrote_from="priya@newco.example", steps_done=done)
    assert due(f, SENT_ON).step == "nudge"


def test_same_address_is_no_mismatch() -> None:
    f = facts(SENT_ON, counterpart_last_wrote_from="Priya@Acme.example")
    assert due(f, SENT_ON).step == "nudge"


# --- investigation tasks and the phone (PLAYBOOK stage 2, safeguards) --------------------------

NUDGED = (sent("nudge", rome(2026, 11, 24, 9)),)


def test_investigate_task_with_a_phone_on_file() -> None:
    f = facts(SENT_ON, stage="project", steps_done=NUDGED)
    step = due(f, SENT_ON, ACME)
    assert (step.step, step.action, step.task) == ("investigate", "task", "investigate")
    assert step.due_at == rome(2026, 12, 1, 9)
    assert any("call Acme on +39 02 1234567" in line for line in step.checklist)
    assert any("active elsewhere" in line and "neutral" in line for line in step.checklist)


def test_investigate_task_says_no_phone_on_file() -> None:
    step = due(facts(SENT_ON, stage="project", steps_done=NUDGED), SENT_ON)
    assert any("no phone on file" in line for line in step.checklist)


def test_investigate_task_flags_the_address_they_last_wrote_from() -> None:
    done = (*NUDGED, sent("address_mismatch", rome(2026, 11, 18, 9), "done"))
    f = facts(
        SENT_ON, stage="project", steps_done=done, counterpart_last_wrote_from="p@new.example"
    )
    step = due(f, SENT_ON)
    assert "they last wrote from p@new.example: the first suspect" in step.checklist[0]


def test_work_paused_after_investigation_is_a_firm_pause() -> None:
    done = (*NUDGED, sent("investigate", rome(2026, 12, 1, 9), "done"))
    step = due(facts(SENT_ON, stage="project", steps_done=done), SENT_ON)
    assert (step.step, step.action, step.template, step.mode) == (
        "work_paused",
        "pause",
        "work_paused",
        "approve",
    )
    assert step.due_at == rome(2026, 12, 9, 9)  # 5 business days, 8 December a holiday


PAUSED = (
    *NUDGED,
    sent("investigate", rome(2026, 12, 1, 9), "done"),
    sent("work_paused", rome(2026, 12, 9, 9)),
)


def test_kill_fee_follows_the_pause_when_the_contract_has_one() -> None:
    f = facts(SENT_ON, stage="project", steps_done=PAUSED, first_unanswered_at=rome(2026, 11, 10))
    step = due(f, rome(2026, 12, 9, 10), ACME)
    assert (step.step, step.template, step.mode) == ("kill_fee", "kill_fee_notice", "approve")
    # 30 days after 10 November is 10 December, but never within a week of the pause notice.
    assert step.due_at == rome(2026, 12, 16, 9)
    assert any("invoice the work done so far" in line for line in step.checklist)


def test_without_a_kill_fee_clause_the_thread_stays_paused() -> None:
    f = facts(SENT_ON, stage="project", steps_done=PAUSED)
    assert next_step(f, IT, rome(2027, 1, 20)) is None
    e = explain(f, IT, rome(2027, 1, 20))
    assert e.status == "paused"
    assert e.lines[0] == "paused: work on hold since Wed 9 Dec 2026"
    assert "kill_fee does not apply: no kill_fee_after in the contract" in e.lines


# --- payment: notices, late fee, final notice (PLAYBOOK stage 3) -------------------------------

INVOICE = Invoice("2026-014", Decimal("1234.56"), "EUR", date(2026, 10, 1), attachment="f.pdf")
CHECKED = sent("deliverables_check", rome(2026, 10, 8, 9))
RESENT = sent("resend_with_late_fee", rome(2026, 10, 15, 9))
N30 = sent("notice_30", rome(2026, 11, 2, 9))
N60 = sent("notice_60", rome(2026, 11, 30, 9))
N90 = sent("notice_90", rome(2026, 12, 30, 9))


def payment(done: Sequence[StepRecord], **kw: Any) -> ThreadFacts:
    last = done[-1].at if done else rome(2026, 9, 28, 10)
    return facts(last, stage="payment", invoice=INVOICE, steps_done=tuple(done), **kw)


@pytest.mark.parametrize(
    ("done", "expected_step", "expected_due"),
    [
        pytest.param((), "deliverables_check", rome(2026, 10, 5, 10),
                     id="first-check-the-deliverables-arrived"),
        pytest.param((CHECKED,), "resend_with_late_fee", rome(2026, 10, 15, 9),
                     id="then-resend-with-late-fee"),
        pytest.param((CHECKED, RESENT), "notice_30", rome(2026, 11, 2, 9),
                     id="notice-30-days-after-due-date-weekend-and-all-saints"),
        pytest.param((CHECKED, RESENT, N30), "notice_60", rome(2026, 11, 30, 9),
                     id="notice-60-days-after-due-date"),
        pytest.param((CHECKED, RESENT, N30, N60), "notice_90", rome(2026, 12, 30, 9),
                     id="notice-90-days-after-due-date"),
        pytest.param((CHECKED, RESENT, N30, N60, N90), "final_notice", rome(2027, 1, 7, 9),
                     id="final-notice-97-days-after-due-date-epiphany"),
    ],
)  # fmt: skip
def test_payment_steps_follow_the_due_date(
    done: tuple[StepRecord, ...], expected_step: str, expected_due: datetime
) -> None:
    f = payment(done)
    step = due(f, f.verdict.awaiting_since or SENT_ON)
    assert (step.step, step.due_at) == (expected_step, expected_due)
    if expected_step.startswith("notice"):
        assert (step.template, step.attach_invoice, step.mode) == (
            "payment_notice",
            True,
            "approve",
        )


def test_resend_carries_the_late_fee_and_channel_reminders() -> None:
    without_contract = due(payment((CHECKED,)), rome(2026, 10, 8, 10))
    assert without_contract.step == "resend_with_late_fee"
    assert without_contract.late_fee is None
    step = due(payment((CHECKED,)), rome(2026, 10, 8, 10), ACME)
    assert step.late_fee == Decimal("138.76")  # 40 + 8% of 1234.56
    assert step.attach_invoice
    assert any("certified mail" in line for line in step.checklist)
    assert any("call Acme on +39 02 1234567" in line for line in step.checklist)


@pytest.mark.parametrize(
    ("amount", "contract", "expected"),
    [
        pytest.param("1000", {"late_fee_amount": 40, "late_fee_percent": 8}, "120.00",
                     id="amount-plus-percent"),
        pytest.param("1234.56", {"late_fee_amount": 40, "late_fee_percent": 8}, "138.76",
                     id="rounded-to-the-cent"),
        pytest.param("999.99", {"late_fee_percent": "2.5"}, "25.00", id="half-up"),
        pytest.param("500", {"late_fee_amount": 40}, "40.00", id="fixed-only"),
        pytest.param("500", {}, None, id="no-late-fee-terms"),
        pytest.param("500", None, None, id="no-contract"),
    ],
)  # fmt: skip
def test_late_fee_computation(
    amount: str, contract: dict[str, Any] | None, expected: str | None
) -> None:
    terms = None if contract is None else Contract.model_validate(contract)
    fee = compute_late_fee(Decimal(amount), terms)
    assert fee == (None if expected is None else Decimal(expected))
    if fee is not None:
        assert fee.as_tuple().exponent == -2


def test_final_notice_deadline_in_business_days() -> None:
    step = due(payment((CHECKED, RESENT, N30, N60, N90)), rome(2026, 12, 30, 10))
    assert step.template == "final_notice"
    assert step.due_at == rome(2027, 1, 7, 9)
    assert step.deadline_at == rome(2027, 1, 21, 9)  # 10 business days


def test_final_notice_deadline_in_calendar_days() -> None:
    custom = PolicySettings.model_validate(
        {
            "defaults": {"time_zone": "Europe/Rome", "country": "IT"},
            "policies": {"payment": {"steps": [{
                "name": "final_notice", "after": "97d", "anchor": "due_date",
                "template": "final_notice", "deadline": "30d", "firm": True,
            }]}},
        }
    )  # fmt: skip
    step = due(payment(()), rome(2026, 9, 28, 10), custom)
    assert step.due_at == rome(2027, 1, 7, 9)
    assert step.deadline_at == rome(2027, 2, 6, 9)


def test_overdue_notices_are_superseded_by_the_latest_one_due() -> None:
    """PLAYBOOK: notices at 30, 60 *and/or* 90 days: a late start sends the latest one."""
    resent_late = sent("resend_with_late_fee", rome(2026, 12, 2, 9))
    f = facts(rome(2026, 12, 2, 9), stage="payment", invoice=INVOICE,
              steps_done=(CHECKED, resent_late))  # fmt: skip
    step = due(f, rome(2026, 12, 3, 10))
    assert step.step == "notice_60"
    assert step.due_at == rome(2026, 12, 9, 9)  # not within a week of the resend
    assert "skipped notice_30: notice_60 is already due" in step.reason


def test_small_claims_is_a_task_after_the_final_deadline() -> None:
    final = sent("final_notice", rome(2027, 1, 7, 9))
    step = due(payment((CHECKED, RESENT, N30, N60, N90, final)), rome(2027, 1, 7, 10))
    assert (step.step, step.action, step.task, step.template) == (
        "small_claims",
        "task",
        "small_claims",
        None,
    )
    assert step.due_at == rome(2027, 1, 21, 9)
    assert any("invoice 2026-014" in line for line in step.checklist)


def test_payment_step_needs_an_invoice() -> None:
    f = facts(SENT_ON, stage="payment", steps_done=(sent("deliverables_check", SENT_ON),))
    assert next_step(f, IT, SENT_ON) is None
    e = explain(f, IT, SENT_ON)
    assert e.status == "needs_invoice"
    assert "run ghostwatch track t1 --invoice" in e.lines[0]


# --- stages -----------------------------------------------------------------------------------

RULED = make_settings(
    clients=[{"name": "Acme", "domains": ["acme.example"], "stage": "project"}],
    rules=[
        {"stage": "payment", "subject": r"\binvoice\b"},
        {"stage": "ignore", "domain": "noise.example"},
    ],
)


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        pytest.param({"stage": "prospect", "subject": "Invoice"}, ("prospect",
                     "set by you with ghostwatch track"), id="explicit-beats-rules"),
        pytest.param({"subject": "Invoice 12"}, ("payment", r"rule 1: subject '\\binvoice\\b'"),
                     id="first-matching-rule"),
        pytest.param({"subject": "Hello"}, ("project", "client Acme's stage"),
                     id="client-stage"),
        pytest.param({"subject": "Hello", "to": "x@else.example"}, ("prospect",
                     "the default stage"), id="default-stage"),
    ],
)  # fmt: skip
def test_resolve_stage(kw: dict[str, Any], expected: tuple[str, str]) -> None:
    subject = kw.pop("subject")
    verdict = awaiting(SENT_ON, kw.pop("to", CLIENT))
    f = ThreadFacts("t1", "work", subject, verdict, **kw)
    assert resolve_stage(f, RULED) == expected


def test_ignore_stage_gets_nothing() -> None:
    f = facts(SENT_ON, to="news@noise.example")
    assert next_step(f, RULED, rome(2026, 12, 20)) is None
    assert explain(f, RULED, rome(2026, 12, 20)).status == "ignored"


def test_unknown_explicit_stage_is_explained() -> None:
    f = facts(SENT_ON, stage="vip")
    assert next_step(f, IT, SENT_ON) is None
    assert explain(f, IT, SENT_ON).status == "unknown_stage"


# --- plan and explain ------------------------------------------------------------------------


def test_plan_sorts_by_due_time_then_thread_and_honours_until() -> None:
    threads = [
        facts(SENT_ON, "b"),
        facts(SENT_ON, "a"),
        facts(rome(2026, 11, 16, 10), "c"),
        facts(SENT_ON, "d", stopped="no"),
    ]
    steps = plan(threads, IT, SENT_ON)
    assert [s.thread_id for s in steps] == ["c", "a", "b"]
    assert [s.thread_id for s in plan(threads, IT, SENT_ON, until=rome(2026, 11, 23, 12))] == ["c"]


def test_plan_refuses_a_thread_twice() -> None:
    with pytest.raises(ValueError, match="given twice"):
        plan([facts(SENT_ON), facts(SENT_ON)], IT, SENT_ON)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        next_step(facts(SENT_ON), IT, datetime(2026, 11, 17, 10))


def test_explanation_of_a_scheduled_step() -> None:
    e = explain(facts(SENT_ON), IT, SENT_ON)
    assert e.status == "scheduled"
    assert e.lines[0] == (
        "prospect step 1 of 3 (nudge) due Tue 24 Nov 10:00 "
        "(no reply for 5 business days since Tue 17 Nov)"
    )
    assert e.lines[1] == "stage: prospect (the default stage)"
    assert e.next_step is not None
    assert e.next_step.reason == (
        "no reply for 5 business days since Tue 17 Nov; prospect step 1 of 3 (nudge)"
    )


def test_explanation_surfaces_a_slow_client_and_late_payments() -> None:
    f = facts(
        SENT_ON,
        reply_latencies=(timedelta(days=6), timedelta(days=9), timedelta(days=2)),
        days_late_history=(0, 12, 30),
    )
    lines = explain(f, IT, SENT_ON).lines
    assert any("habitually slow" in line and "median 6 days" in line for line in lines)
    assert any("days late 0, 12, 30" in line and "deposit" in line for line in lines)


# --- client history helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        pytest.param([], None, id="no-history"),
        pytest.param([2], (2, 2), id="one-reply"),
        pytest.param([1, 2, 3, 10], (2.5, 10), id="even-count-median"),
        pytest.param(list(range(1, 11)), (5.5, 9), id="nearest-rank-p90"),
    ],
)
def test_reply_latency_stats(days: list[int], expected: tuple[float, float] | None) -> None:
    stats = reply_latency_stats([timedelta(days=d) for d in days])
    if expected is None:
        assert stats is None
    else:
        assert stats == (timedelta(days=expected[0]), timedelta(days=expected[1]))


def test_habitually_slow_means_median_over_the_threshold() -> None:
    assert is_habitually_slow([timedelta(days=d) for d in (6, 7, 1)], 5.0)
    assert not is_habitually_slow([timedelta(days=d) for d in (5, 5, 30)], 5.0)
    assert not is_habitually_slow([], 5.0)


def test_late_payment_history_counts_days_late_of_paid_invoices() -> None:
    invoices = [
        Invoice("1", Decimal(1), "EUR", date(2026, 1, 31), rome(2026, 3, 2, 12)),
        Invoice("2", Decimal(1), "EUR", date(2026, 2, 28), rome(2026, 2, 20, 12)),
        Invoice("3", Decimal(1), "EUR", date(2026, 3, 31)),
    ]
    assert late_payment_history(invoices) == [30, 0]


# --- invariants (property tests) --------------------------------------------------------------

ZONES = ("Europe/Rome", "America/New_York", "UTC", "Asia/Tokyo", "Australia/Sydney")
COUNTRIES = {"Europe/Rome": "IT", "America/New_York": "US", "Asia/Tokyo": "JP"}
PROPERTY_SETTINGS = PolicySettings.model_validate(
    {
        "defaults": {"time_zone": "Europe/Rome", "country": "IT"},
        "clients": [
            {"name": f"client-{zone}", "domains": [f"c{i}.example"], "time_zone": zone,
             "country": COUNTRIES.get(zone),
             "contract": ACME_CONTRACT if i % 2 else None}
            for i, zone in enumerate(ZONES)
        ],
    }
)  # fmt: skip
OOF_BODIES = (
    "I am out of the office until 7 December with limited access to email.",
    "Sono fuori ufficio fino al 4 gennaio.",
    "Ich bin bis 1. Dezember nicht im Büro.",
    "Thanks for your message, I am away.",
)
STATES = tuple(ThreadState)


@st.composite
def thread_facts(draw: st.DrawFn, thread_id: str) -> ThreadFacts:
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    client = draw(st.integers(0, len(ZONES)))  # len(ZONES): an unknown client
    to = f"someone@c{client}.example"
    since = draw(
        st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(zone))
    )
    stage = draw(
        st.sampled_from([None, "prospect", "project", "payment", "ignore"]) | st.just("payment")
    )
    # Mostly awaiting a reply: that is where the interesting rules live.
    state = draw(st.sampled_from(STATES) | st.just(ThreadState.AWAITING_REPLY))
    steps = [s.name for s in DEFAULT_POLICIES[stage or "prospect"].steps]
    # Usually a prefix of the policy (how it happens), sometimes any subset.
    prefix = steps[: draw(st.integers(0, len(steps)))]
    chosen = draw(st.just(prefix) | st.lists(st.sampled_from(steps), unique=True)) if steps else []
    records, at = [], since
    for name in sorted(chosen, key=steps.index):
        at += timedelta(days=draw(st.integers(0, 40)), hours=draw(st.integers(0, 23)))
        outcome = draw(
            st.sampled_from(["sent", "done", "skipped", "failed", "snoozed:x"]) | st.just("sent")
        )
        records.append(StepRecord(name, at, outcome))
    invoice = None
    if draw(st.booleans()):
        due_day = (since - timedelta(days=draw(st.integers(-30, 150)))).date()
        invoice = Invoice("N", Decimal(draw(st.integers(1, 10**6))) / 100, "EUR", due_day)
    oof: tuple[AutoReply, ...] = ()
    if draw(st.booleans()):
        reply_at = since + timedelta(hours=draw(st.integers(-48, 24 * 20)))
        oof = (AutoReply(reply_at, draw(st.sampled_from(OOF_BODIES)), "Out of office"),)
    verdict = Verdict(
        state,
        "Subject",
        since,
        1,
        awaiting_since=since if state is ThreadState.AWAITING_REPLY else None,
        counterpart=to,
        counterparts=(to,),
    )
    snooze = draw(st.none() | st.just(since + timedelta(days=draw(st.integers(0, 60)))))
    return ThreadFacts(
        thread_id,
        "work",
        "Subject",
        verdict,
        stage=stage,
        counterpart_last_wrote_from=draw(st.sampled_from([None, to, "other@else.example"])),
        auto_replies=oof,
        bounced_addresses=draw(st.sampled_from([(), (to,), ("x@y.example",)])),
        known_addresses=(to, "backup@else.example"),
        invoice=invoice,
        steps_done=tuple(records),
        snoozed_until=snooze,
        first_unanswered_at=draw(st.none() | st.just(since - timedelta(days=10))),
    )


def _expected_earliest(f: ThreadFacts, step: PlannedStep) -> datetime:
    """anchor + after for a policy step, recomputed independently of the engine."""
    stage, _ = resolve_stage(f, PROPERTY_SETTINGS)
    policy = PROPERTY_SETTINGS.policies[stage]
    s = policy.steps[step.index]
    cal = calendar_for(f, PROPERTY_SETTINGS)
    assert f.verdict.awaiting_since is not None
    done = {r.step: r for r in f.steps_done if r.outcome in ("sent", "done", "skipped")}
    anchor = f.verdict.awaiting_since
    if s.anchor == "due_date":
        assert f.invoice is not None
        anchor = datetime.combine(f.invoice.due, cal.window_start, tzinfo=cal.zone())
    elif s.anchor == "first_unanswered":
        anchor = f.first_unanswered_at or anchor
    elif s.anchor == "previous":
        earlier = [done[p.name] for p in policy.steps[: step.index] if p.name in done]
        if earlier:
            anchor = earlier[-1].at
    offset = s.after_offset
    if offset is None:
        client = PROPERTY_SETTINGS.client_for([f.verdict.counterpart or ""])
        assert client is not None and client.contract is not None
        offset = client.contract.kill_fee_offset
    assert offset is not None
    return offset.apply(anchor, cal)


def some_threads(most: int) -> st.SearchStrategy[tuple[ThreadFacts, ...]]:
    return st.integers(1, most).flatmap(
        lambda n: st.tuples(*(thread_facts(f"t{i}") for i in range(n)))
    )


OFFSET_DAYS = st.integers(-5, 60) | st.integers(-5, 400)


def _now_after(threads: tuple[ThreadFacts, ...], offset_days: int, hour: int) -> datetime:
    base = min(f.verdict.last_activity for f in threads)
    return (base + timedelta(days=offset_days)).replace(hour=hour)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    threads=some_threads(4),
    offset_days=OFFSET_DAYS,
    hour=st.integers(0, 23),
)
def test_plan_invariants(threads: tuple[ThreadFacts, ...], offset_days: int, hour: int) -> None:
    now = _now_after(threads, offset_days, hour)
    steps = plan(threads, PROPERTY_SETTINGS, now)
    by_id = {f.thread_id: f for f in threads}
    # Never two steps for one thread in one plan.
    assert len({s.thread_id for s in steps}) == len(steps)
    assert steps == sorted(steps, key=lambda s: (s.due_at.astimezone(UTC), s.thread_id))
    for step in steps:
        f = by_id[step.thread_id]
        # Never anything (so never a send) while the verdict is not awaiting a reply.
        assert f.verdict.awaiting
        # Every due time is inside the send window of the thread's calendar.
        assert calendar_for(f, PROPERTY_SETTINGS).in_window(step.due_at)
        # Nothing done is planned again.
        done = {r.step for r in f.steps_done if r.outcome in ("sent", "done", "skipped")}
        assert step.step not in done
        # Nothing is sent to an address that bounced.
        if f.verdict.counterpart in f.bounced_addresses:
            assert step.action == "task"
        # Due no earlier than anchor + after.
        if step.index >= 0:
            earliest = _expected_earliest(f, step)
            assert step.due_at.astimezone(UTC) >= earliest.astimezone(UTC)
        opening = calendar_for(f, PROPERTY_SETTINGS).next_window_open(now)
        assert step.due_at.astimezone(UTC) >= opening.astimezone(UTC)
        # The explanation describes the very same step.
        assert explain(f, PROPERTY_SETTINGS, now).next_step == step


# plan() shares lookups between threads (clients by address, calendars, per-policy texts
# and offsets, texts of dates): each thread's step must be the one planned on its own.


def _exact(step: PlannedStep) -> tuple[object, ...]:
    """Every field, with due_at's wall time, fold and zone (== compares only instants)."""
    return tuple(
        (v.replace(tzinfo=None), v.fold, v.tzinfo) if isinstance(v, datetime) else v
        for v in (getattr(step, f) for f in PlannedStep.__slots__)
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    threads=some_threads(12),
    offset_days=OFFSET_DAYS,
    hour=st.integers(0, 23),
)
def test_plan_is_each_threads_next_step_on_its_own(
    threads: tuple[ThreadFacts, ...], offset_days: int, hour: int
) -> None:
    now = _now_after(threads, offset_days, hour)
    alone = [s for f in threads if (s := next_step(f, PROPERTY_SETTINGS, now)) is not None]
    alone.sort(key=lambda s: (s.due_at.astimezone(UTC), s.thread_id))
    assert [_exact(s) for s in plan(threads, PROPERTY_SETTINGS, now)] == [_exact(s) for s in alone]
    until = now + timedelta(days=10)
    assert [_exact(s) for s in plan(threads, PROPERTY_SETTINGS, now, until=until)] == [
        _exact(s) for s in alone if s.due_at.astimezone(UTC) <= until.astimezone(UTC)
    ]
    for f in threads:
        step = explain(f, PROPERTY_SETTINGS, now).next_step
        assert (step and _exact(step)) == next((_exact(s) for s in alone if s.thread_id ==
                                                f.thread_id), None)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    now=st.datetimes(datetime(2025, 1, 1), datetime(2028, 12, 31), timezones=st.just(UTC)),
    times=st.lists(
        st.datetimes(
            datetime(2024, 1, 1),
            datetime(2029, 12, 31),
            timezones=st.sampled_from([ZoneInfo(z) for z in ZONES]),
        ),
        max_size=6,
    ),
)
def test_texts_of_dates_and_times(zone: str, now: datetime, times: list[datetime]) -> None:
    s = make_settings(clients=[{"name": "Z", "domains": ["z.example"], "time_zone": zone}])
    ctx = engine._Context(s, now)
    f = facts(now, to="a@z.example")
    client = ctx.client(f, ("a@z.example",))
    planner = engine._Planner(
        ctx, f, ctx.profile(s.policies["prospect"], client), ("", ()), verbose=True
    )
    tz = ZoneInfo(zone)
    year = now.astimezone(tz).year
    for t in times + times:
        local = t.astimezone(tz)
        day = f"{local:%a} {local.day} {local:%b}" + (
            "" if local.year == year else f" {local.year}"
        )
        assert planner.day(t) == planner.day(local.date()) == day
        assert planner.when(t) == f"{day} {local:%H:%M}"


def test_client_lookups_are_the_settings_ones() -> None:
    s = make_settings(
        clients=[
            {"name": "A", "addresses": ["boss@b.example"], "domains": ["a.example"]},
            {"name": "B", "domains": ["b.example"]},
        ]
    )
    ctx = engine._Context(s, None)
    for addrs in [("x@a.example",), ("boss@b.example",), ("x@b.example", "boss@b.example"),
                  ("x@eu.a.example",), ("x@c.example",), ("x@c.example", "y@a.example"), ()]:  # fmt: skip
        for _ in range(2):
            got = ctx.client(facts(SENT_ON, to="x@c.example"), addrs)
            assert got is s.client_for(addrs)
