"""Who owes whom a reply: the pure judgment, with plain values and a fixed now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ghostwatch.classify import Kind
from ghostwatch.judgment import Identity, Msg, ThreadState, judge_all, judge_thread
from ghostwatch.message import Direction

ME = Identity(frozenset({"alice@example.test", "alice@old.test"}), frozenset({"example.test"}))
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=10)


def out(mid: str, day: float, to: str = "bob@client.test", **kw: object) -> Msg:
    return Msg(
        message_id=mid,
        date=T0 + timedelta(days=day),
        direction=Direction.OUTGOING,
        kind=Kind.HUMAN,
        from_addr="alice@example.test",
        to_addrs=(to,),
        subject="Proposal",
        **kw,  # type: ignore[arg-type]
    )


def inc(mid: str, day: float, frm: str = "bob@client.test", kind: Kind = Kind.HUMAN) -> Msg:
    return Msg(
        message_id=mid,
        date=T0 + timedelta(days=day),
        direction=Direction.INCOMING,
        kind=kind,
        from_addr=frm,
        to_addrs=("alice@example.test",),
        subject="Re: Proposal",
    )


def test_unanswered_outgoing_awaits_since_its_date() -> None:
    v = judge_thread([out("<1@x>", 0)], ME, NOW)
    assert v.state is ThreadState.AWAITING_REPLY
    assert v.awaiting_since == T0
    assert v.counterpart == "bob@client.test"
    assert v.last_outgoing_message_id == "<1@x>"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (inc("<2@x>", 1), ThreadState.ANSWERED),
        (inc("<2@x>", 1, frm="bob.private@client.test"), ThreadState.ANSWERED),
        (inc("<2@x>", 1, frm="carol@client.test"), ThreadState.ANSWERED),
        (inc("<2@x>", 1, kind=Kind.AUTO_REPLY), ThreadState.AWAITING_REPLY),
        (
            inc("<2@x>", 1, frm="mailer-daemon@mx.test", kind=Kind.BOUNCE),
            ThreadState.AWAITING_REPLY,
        ),
        (inc("<2@x>", 1, frm="news@client.test", kind=Kind.BULK), ThreadState.AWAITING_REPLY),
        (inc("<2@x>", 1, frm="dave@example.test"), ThreadState.AWAITING_REPLY),
    ],
    ids=[
        "human-reply-answers",
        "other-address-of-client-answers",
        "colleague-at-client-answers",
        "auto-reply-is-not-an-answer",
        "bounce-is-not-an-answer",
        "newsletter-is-not-an-answer",
        "users-own-colleague-is-not-the-clients-answer",
    ],
)
def test_what_counts_as_an_answer(answer: Msg, expected: ThreadState) -> None:
    assert judge_thread([out("<1@x>", 0), answer], ME, NOW).state is expected


def test_a_later_outgoing_message_rearms_the_thread() -> None:
    msgs = [out("<1@x>", 0), inc("<2@x>", 1), out("<3@x>", 2)]
    v = judge_thread(msgs, ME, NOW)
    assert v.state is ThreadState.AWAITING_REPLY
    assert v.awaiting_since == T0 + timedelta(days=2)
    assert v.last_outgoing_message_id == "<3@x>"


def test_their_message_last_means_the_user_owes_a_reply() -> None:
    assert judge_thread([inc("<2@x>", 1)], ME, NOW).state is ThreadState.OWED_BY_USER


def test_messages_after_now_are_not_seen_yet() -> None:
    v = judge_thread([out("<1@x>", 0), inc("<2@x>", 20)], ME, NOW)
    assert v.state is ThreadState.AWAITING_REPLY


def test_automated_notes_are_recorded_along_the_way() -> None:
    bounce = Msg(
        "<b@x>",
        T0 + timedelta(days=1),
        Direction.INCOMING,
        Kind.BOUNCE,
        "mailer-daemon@mx.test",
        bounced_addrs=("bob@client.test",),
    )
    v = judge_thread([out("<1@x>", 0), inc("<2@x>", 0.5, kind=Kind.AUTO_REPLY), bounce], ME, NOW)
    assert v.awaiting
    assert any(n.startswith("auto-reply from bob@client.test") for n in v.notes)
    assert any("bounce" in n and "bob@client.test" in n for n in v.notes)


def test_mail_only_among_colleagues_is_internal() -> None:
    v = judge_thread([out("<1@x>", 0, to="dave@example.test")], ME, NOW)
    assert v.state is ThreadState.INTERNAL


def test_note_to_self_is_never_awaited() -> None:
    note = Msg("<n@x>", T0, Direction.SELF, Kind.HUMAN, "alice@example.test", ("alice@old.test",))
    assert judge_thread([note], ME, NOW).state is ThreadState.NOTE_TO_SELF


def test_same_message_in_inbox_and_sent_counts_once() -> None:
    copy = out("<1@x>", 0)
    v = judge_thread([copy, copy], ME, NOW)
    assert v.message_count == 1


def test_counterpart_writing_in_another_thread_has_answered() -> None:
    threads = {
        "t1": [out("<1@x>", 0)],
        "t2": [inc("<9@x>", 3, frm="bob@client.test")],
    }
    verdicts = judge_all(threads, ME, NOW)
    assert verdicts["t1"].state is ThreadState.ANSWERED_ELSEWHERE
    assert "t2" in verdicts["t1"].notes[-1]


def test_freemail_neighbours_are_not_colleagues() -> None:
    threads = {
        "t1": [out("<1@x>", 0, to="bob@gmail.com")],
        "t2": [inc("<9@x>", 3, frm="stranger@gmail.com")],
    }
    assert judge_all(threads, ME, NOW)["t1"].state is ThreadState.AWAITING_REPLY


def test_contact_elsewhere_before_our_message_does_not_count() -> None:
    threads = {"t1": [out("<1@x>", 5)], "t2": [inc("<9@x>", 3)]}
    assert judge_all(threads, ME, NOW)["t1"].awaiting


def test_counterpart_answering_through_a_mailing_list_answers() -> None:
    via_list = inc("<2@x>", 1, kind=Kind.BULK)
    assert judge_thread([out("<1@x>", 0), via_list], ME, NOW).state is ThreadState.ANSWERED


def test_unrelated_bulk_mail_in_the_thread_does_not_answer() -> None:
    spam = inc("<2@x>", 1, frm="promo@shop.test", kind=Kind.BULK)
    assert judge_thread([out("<1@x>", 0), spam], ME, NOW).awaiting


def test_thread_is_named_after_the_human_message_not_the_auto_reply() -> None:
    auto = Msg(
        "<0@x>", T0, Direction.INCOMING, Kind.AUTO_REPLY, "bob@client.test",
        subject="Automatic reply: Proposal",
    )  # fmt: skip
    assert judge_thread([auto, out("<1@x>", 0)], ME, NOW).subject == "Proposal"


def test_the_silence_starts_at_the_first_message_after_their_last_answer() -> None:
    msgs = [out("<1@x>", 0), inc("<2@x>", 1), out("<3@x>", 2), out("<4@x>", 4)]
    v = judge_thread(msgs, ME, NOW)
    assert v.first_unanswered_at == T0 + timedelta(days=2)
    assert v.awaiting_since == T0 + timedelta(days=4)
