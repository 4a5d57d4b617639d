"""Unit tests for ghostwatch.threads: JWZ threading, subject fallback, id parsing."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostwatch.threads import (
    StreamThreader,
    ThreadInput,
    mentioned_ids,
    normalize_subject,
    parse_msgid_list,
    thread_messages,
    thread_messages_keyed,
    to_micros,
)

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
CLIENT = "client@acme.example"
OTHER = "someone@else.example"


def msg(
    key: int,
    message_id: str | None,
    *,
    refs: tuple[str, ...] = (),
    irt: str | None = None,
    subject: str = "Website redesign",
    days: float = 0,
    participants: frozenset[str] = frozenset({CLIENT}),
) -> ThreadInput:
    return ThreadInput(
        key=key,
        message_id=message_id,
        in_reply_to=irt,
        references=refs,
        subject=subject,
        date=T0 + timedelta(days=days),
        participants=participants,
    )


def tid(root_id: str) -> str:
    """The documented thread id formula, computed independently of the module."""
    return "t" + hashlib.sha1(root_id.encode()).hexdigest()[:12]  # noqa: S324 - not security


def same_thread(result: dict[int, str], *keys: int) -> bool:
    return len({result[k] for k in keys}) == 1


# --- Linking by headers ---------------------------------------------------------------------


def test_reply_via_references_joins_the_thread_of_the_referenced_message() -> None:
    result = thread_messages(
        [
            msg(1, "<orig@acme>"),
            msg(2, "<reply@me>", refs=("<orig@acme>",), days=1),
            msg(3, "<unrelated@acme>", subject="Something else", days=2),
        ]
    )
    assert result[1] == result[2] == tid("<orig@acme>")
    assert result[3] != result[1]


def test_reply_via_in_reply_to_only_joins_the_thread() -> None:
    result = thread_messages(
        [msg(1, "<orig@acme>"), msg(2, "<reply@me>", irt="<orig@acme>", days=1)]
    )
    assert result == {1: tid("<orig@acme>"), 2: tid("<orig@acme>")}


def test_in_reply_to_not_at_end_of_references_still_links_as_parent() -> None:
    """JWZ step 1: In-Reply-To is appended as the last parent when References lacks it."""
    result = thread_messages(
        [
            msg(1, "<a@x>"),
            msg(2, "<b@x>", subject="Other topic", participants=frozenset({OTHER})),
            msg(3, "<c@x>", refs=("<a@x>",), irt="<b@x>", days=1),
        ]
    )
    assert same_thread(result, 1, 2, 3)


def test_phantom_containers_link_a_client_reply_to_the_original_we_answered() -> None:
    """Client reply references our sent reply, which references the original we hold."""
    result = thread_messages(
        [
            msg(1, "<orig@acme>"),
            # Our sent reply (key 2) is not in the input: only its id survives as a phantom.
            msg(3, "<client2@acme>", refs=("<sent@me>",), days=2),
            msg(4, "<client3@acme>", refs=("<orig@acme>", "<sent@me>"), days=3),
        ]
    )
    assert same_thread(result, 1, 3, 4)
    assert result[1] == tid("<orig@acme>")


def test_phantom_root_gives_a_stable_thread_id_when_the_root_arrives_later() -> None:
    """Thread id of a reply is the same before and after the older root message is synced."""
    sent = msg(2, "<sent@me>", refs=("<orig@acme>",), days=1)
    reply = msg(3, "<client@acme>", refs=("<orig@acme>", "<sent@me>"), days=2)
    before = thread_messages([sent, reply])
    after = thread_messages([msg(1, "<orig@acme>"), sent, reply])
    assert before[3] == after[3] == after[1] == tid("<orig@acme>")
    assert before[2] == after[2]


def test_duplicate_message_id_across_folders_shares_one_thread() -> None:
    """INBOX and Sent copies (or Gmail All Mail duplicates) of one message get one thread."""
    result = thread_messages(
        [
            msg(10, "<same@me>", days=1),  # Sent copy
            msg(11, "<same@me>", days=1),  # INBOX copy (we Cc'd ourselves)
            msg(12, "<same@me>", days=1, subject="Different header decoding"),
            msg(13, "<reply@acme>", refs=("<same@me>",), days=2),
        ]
    )
    assert same_thread(result, 10, 11, 12, 13)
    assert result[10] == tid("<same@me>")


def test_missing_message_id_gets_a_synthetic_per_key_thread() -> None:
    result = thread_messages(
        [
            msg(7, None, subject="First topic"),
            msg(8, None, subject="Second topic"),
            msg(9, "", subject="Third topic"),
        ]
    )
    assert result[7] == tid("<no-id-7@ghostwatch.invalid>")
    assert result[8] == tid("<no-id-8@ghostwatch.invalid>")
    assert result[9] == tid("<no-id-9@ghostwatch.invalid>")


def test_message_without_id_still_threads_through_its_references() -> None:
    result = thread_messages([msg(1, "<orig@acme>"), msg(2, None, refs=("<orig@acme>",), days=1)])
    assert result[1] == result[2] == tid("<orig@acme>")


# --- Pathological graphs --------------------------------------------------------------------


def test_reference_loop_terminates_and_keeps_both_messages_together() -> None:
    """A refs B and B refs A: the JWZ loop check refuses the second link, no hang."""
    result = thread_messages(
        [
            msg(1, "<a@x>", refs=("<b@x>",)),
            msg(2, "<b@x>", refs=("<a@x>",), days=1),
            msg(3, "<c@x>", refs=("<a@x>", "<b@x>", "<a@x>", "<c@x>"), days=2),
        ]
    )
    assert same_thread(result, 1, 2, 3)


def test_self_reference_is_ignored() -> None:
    """A message citing its own id neither crashes nor counts as a link."""
    result = thread_messages(
        [msg(1, "<self@x>", refs=("<self@x>",), irt="<self@x>", subject="Solo")]
    )
    assert result == {1: tid("<self@x>")}


def test_ten_thousand_deep_chain_threads_without_recursion() -> None:
    """Each message replies to the previous one; input is newest first to stress ordering."""
    depth = 10_000

    def capped_refs(i: int) -> tuple[str, ...]:
        """Clients cap References but keep the first id; emulate that."""
        if i == 0:
            return ()
        return ("<m0@x>", *(f"<m{j}@x>" for j in range(max(1, i - 20), i)))

    chain = [
        msg(i, f"<m{i}@x>", irt=f"<m{i - 1}@x>" if i else None, refs=capped_refs(i), days=i / 100)
        for i in range(depth)
    ]
    result = thread_messages(reversed(chain))
    assert len(result) == depth
    assert set(result.values()) == {tid("<m0@x>")}


def test_single_message_with_five_thousand_references() -> None:
    refs = tuple(f"<r{i}@x>" for i in range(5_000))
    result = thread_messages(
        [
            msg(1, "<long@x>", refs=refs + refs[::-1], days=1),
            msg(2, "<r2500@x>", refs=("<r0@x>",)),
        ]
    )
    assert result[1] == result[2] == tid("<r0@x>")


def test_refused_link_leaves_the_thread_named_by_the_tree_with_the_earliest_message() -> None:
    """A component can span two JWZ trees when a link is refused; the older one names it."""
    result = thread_messages(
        [
            msg(1, "<m1@x>", refs=("<zzz-root@x>",)),
            msg(2, "<m2@x>", refs=("<aaa-root@x>",), days=1),
            # <aaa-root@x> -> <m1@x> is refused: m1 already has a parent (first parent wins).
            msg(3, "<m3@x>", refs=("<aaa-root@x>", "<m1@x>"), days=2),
        ]
    )
    assert result == dict.fromkeys((1, 2, 3), tid("<zzz-root@x>"))


def test_dates_must_be_timezone_aware() -> None:
    naive = ThreadInput(1, "<a@x>", None, (), "x", datetime(2024, 1, 1), frozenset())
    with pytest.raises(ValueError, match="key=1"):
        thread_messages([naive])


# --- Subject fallback -----------------------------------------------------------------------


def test_outlook_reply_without_references_joins_by_re_subject_and_shared_participant() -> None:
    result = thread_messages(
        [
            msg(1, "<sent@me>", subject="Website redesign quote", participants=frozenset({CLIENT})),
            msg(
                2,
                "<outlook@acme>",
                subject="RE: Website redesign quote",
                days=3,
                participants=frozenset({CLIENT, "boss@acme.example"}),
            ),
        ]
    )
    assert result[1] == result[2] == tid("<sent@me>")


def test_outlook_reply_with_its_own_replies_brings_them_along() -> None:
    result = thread_messages(
        [
            msg(1, "<sent@me>", subject="Logo files"),
            msg(2, "<outlook@acme>", subject="R: Logo files", days=1),
            msg(3, "<answer@me>", subject="Re: R: Logo files", refs=("<outlook@acme>",), days=2),
        ]
    )
    assert same_thread(result, 1, 2, 3)
    assert result[3] == tid("<sent@me>")  # earliest root names the merged thread


def test_same_subject_without_prefix_and_different_participants_stays_separate() -> None:
    result = thread_messages(
        [
            msg(1, "<p1@me>", subject="Project proposal", participants=frozenset({CLIENT})),
            msg(2, "<p2@me>", subject="Project proposal", days=2, participants=frozenset({OTHER})),
        ]
    )
    assert result[1] != result[2]


def test_plain_same_subject_to_same_client_in_window_stays_separate() -> None:
    """Two first messages with no reply prefix never merge, even when everything else fits."""
    result = thread_messages(
        [
            msg(1, "<p1@me>", subject="Project proposal"),
            msg(2, "<p2@me>", subject="Project proposal", days=2),
        ]
    )
    assert result[1] != result[2]


def test_reply_subject_without_shared_participant_stays_separate() -> None:
    result = thread_messages(
        [
            msg(1, "<p1@me>", subject="Project proposal", participants=frozenset({CLIENT})),
            msg(
                2, "<p2@x>", subject="Re: Project proposal", days=2, participants=frozenset({OTHER})
            ),
        ]
    )
    assert result[1] != result[2]


@pytest.mark.parametrize(
    ("gap_days", "merged"),
    [(89, True), (91, False), (400, False)],
)
def test_subject_fallback_applies_only_within_the_window(gap_days: int, merged: bool) -> None:
    result = thread_messages(
        [
            msg(1, "<p1@me>", subject="Project proposal"),
            msg(2, "<p2@acme>", subject="Re: Project proposal", days=gap_days),
        ]
    )
    assert (result[1] == result[2]) is merged


def test_subject_window_is_measured_to_the_nearest_message_of_the_thread() -> None:
    result = thread_messages(
        [
            msg(1, "<p1@me>", subject="Project proposal"),
            msg(2, "<p2@acme>", refs=("<p1@me>",), days=80),
            msg(3, "<p3@acme>", subject="Re: Project proposal", days=160),
        ]
    )
    assert same_thread(result, 1, 2, 3)


def test_subject_window_parameter_is_honoured() -> None:
    messages = [
        msg(1, "<p1@me>", subject="Project proposal"),
        msg(2, "<p2@acme>", subject="Re: Project proposal", days=10),
    ]
    assert thread_messages(messages, subject_window=timedelta(days=5))[2] != tid("<p1@me>")
    assert thread_messages(messages, subject_window=timedelta(days=15))[2] == tid("<p1@me>")


def test_plain_orphan_joins_a_thread_whose_root_had_a_reply_prefix() -> None:
    """The prefix may sit on either side: here the older thread's root is the "Re:" one."""
    result = thread_messages(
        [
            msg(1, "<outlook@acme>", subject="AW: Project proposal"),
            msg(2, "<plain@me>", subject="Project proposal", days=1),
        ]
    )
    assert result[1] == result[2] == tid("<outlook@acme>")


def test_flood_of_identical_plain_subjects_stays_separate() -> None:
    """Thousands of identical plain "Build failed" alerts from one sender stay separate."""
    alerts = [
        msg(i, f"<alert{i}@ci>", subject="Build failed: main", days=i / 1000) for i in range(5_000)
    ]
    assert len(set(thread_messages(alerts).values())) == 5_000


@pytest.mark.parametrize("subject", ["Re: Invoice", "RE: hello", "Re: Ciao!", "Re: ok", "Re:"])
def test_generic_or_short_subjects_never_merge(subject: str) -> None:
    plain = normalize_subject(subject)
    result = thread_messages(
        [msg(1, "<p1@me>", subject=plain), msg(2, "<p2@acme>", subject=subject, days=1)]
    )
    assert result[1] != result[2]


def test_orphan_reply_picks_the_latest_preceding_thread() -> None:
    result = thread_messages(
        [
            msg(1, "<old@me>", subject="Re: Project proposal", days=0, refs=("<y@acme>",)),
            msg(2, "<new@me>", subject="Re: Project proposal", days=30, refs=("<x@acme>",)),
            msg(3, "<orphan@acme>", subject="RE: Project proposal", days=40),
            msg(4, "<later@me>", subject="Re: Project proposal", days=45, refs=("<z@acme>",)),
        ]
    )
    assert result[3] == result[2] == tid("<x@acme>")
    assert len({result[1], result[2], result[4]}) == 3


# --- normalize_subject ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Re: Ideas", "ideas"),
        ("RE: Ideas", "ideas"),
        ("re:Ideas", "ideas"),
        ("Re: Re: Re: x", "x"),
        ("Re[3]: x", "x"),
        ("Re(2): x", "x"),
        ("RE [2]: x", "x"),
        ("Re : x", "x"),
        ("Re\uff1a x", "x"),
        ("R: RIF: I: [EXT] Preventivo", "preventivo"),
        ("Rif: ordine 12", "ordine 12"),
        ("RIF: R: x", "x"),
        ("I: Fattura marzo", "fattura marzo"),
        ("R: x", "x"),
        ("AW: WG: Angebot", "angebot"),
        ("SV: VS: Tilbud", "tilbud"),
        ("Antw: Odp: TR: Offerte", "offerte"),
        ("Fwd: Fw: x", "x"),
        ("FW: FWD: x", "x"),
        ("[External] Re: [ticket #123] Fwd: Server down", "server down"),
        ("[SPAM][EXT] hello", "hello"),
        ("  Re:   Lots   of\tspace  ", "lots of space"),
        ("Invoice: March", "invoice: march"),
        ("Rif. ordine 123", "rif. ordine 123"),
        ("Ideas: Re: later", "ideas: re: later"),
        ("I:x", "i:x"),
        ("R:x", "r:x"),
        ("Iris: new logo", "iris: new logo"),
        ("Rest: API", "rest: api"),
        ("Trip: Rome", "trip: rome"),
        ("Regarding the contract", "regarding the contract"),
        ("[EXT]", "[ext]"),
        ("Re: [EXT]", "[ext]"),
        ("Re:", ""),
        ("", ""),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),
        ("\u56de\u590d\uff1a\u62a5\u4ef7", "\u62a5\u4ef7"),  # Chinese "Reply: quote"
    ],
)
def test_normalize_subject_table(raw: str, expected: str) -> None:
    assert normalize_subject(raw) == expected


# --- parse_msgid_list -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ("", ()),
        ("<a@x>", ("<a@x>",)),
        ("<a@x> <b@x>\r\n\t<c@x>", ("<a@x>", "<b@x>", "<c@x>")),
        ("<a@x>,<b@x>;<c@x>", ("<a@x>", "<b@x>", "<c@x>")),
        ("<a@x> <b@x> <a@x>", ("<a@x>", "<b@x>")),
        ("<a@\r\n x>", ("<a@x>",)),
        ("<Case@Example.COM>", ("<Case@Example.COM>",)),
        ("<a@x> (Joe's message of 1 Mar 2024)", ("<a@x>",)),
        ('Your message of "Mon, 1 Mar" <a@x>', ("<a@x>",)),
        ("a@x", ("<a@x>",)),
        ("a@x, b@x", ("<a@x>", "<b@x>")),
        ("joe@example.com's message of Mon, 1 Mar", ()),
        ("(comment a@x) b@x", ("<b@x>",)),
        ("<>", ()),
        ("no ids here", ()),
        ("<<a@x>>", ("<a@x>",)),
        ("<12345>", ("<12345>",)),
    ],
)
def test_parse_msgid_list_table(value: str | None, expected: tuple[str, ...]) -> None:
    assert parse_msgid_list(value) == expected


# --- Properties -----------------------------------------------------------------------------

ID_POOL = [f"<{c}@x>" for c in "abcdefgh"]
SUBJECTS = ["Project alpha", "Re: Project alpha", "RE: project ALPHA", "Fwd: Project alpha"]
SUBJECTS += ["hello", "Re: hello", "", "[EXT] R: Project alpha", "Other"]
PEOPLE = ["a@p", "b@p", "c@p"]
ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7))]


@st.composite
def small_mailboxes(draw: st.DrawFn) -> list[ThreadInput]:
    """Mailboxes drawn from small pools, so ids collide, loop and link often."""
    count = draw(st.integers(0, 14))
    out = []
    for key in range(count):
        out.append(
            ThreadInput(
                key=key,
                message_id=draw(st.none() | st.sampled_from(ID_POOL)),
                in_reply_to=draw(st.none() | st.sampled_from(ID_POOL)),
                references=tuple(draw(st.lists(st.sampled_from(ID_POOL), max_size=5))),
                subject=draw(st.sampled_from(SUBJECTS)),
                date=datetime(2024, 1, 1, tzinfo=draw(st.sampled_from(ZONES)))
                + timedelta(days=draw(st.integers(0, 200)), hours=draw(st.integers(0, 3))),
                participants=frozenset(draw(st.sets(st.sampled_from(PEOPLE), max_size=2))),
            )
        )
    return out


@settings(max_examples=200)
@given(st.data())
def test_result_does_not_depend_on_input_order(data: st.DataObject) -> None:
    messages = data.draw(small_mailboxes())
    shuffled = data.draw(st.permutations(messages))
    assert thread_messages(shuffled) == thread_messages(messages)


@settings(max_examples=200)
@given(small_mailboxes())
def test_every_key_gets_exactly_one_well_formed_thread_id(messages: list[ThreadInput]) -> None:
    result = thread_messages(messages)
    assert set(result) == {m.key for m in messages}
    assert all(len(t) == 13 and t[0] == "t" and int(t[1:], 16) >= 0 for t in result.values())


@settings(max_examples=200)
@given(small_mailboxes())
def test_messages_linked_by_headers_or_shared_id_always_share_a_thread(
    messages: list[ThreadInput],
) -> None:
    result = thread_messages(messages)
    by_id: dict[str, list[int]] = {}
    for m in messages:
        if m.message_id:
            by_id.setdefault(m.message_id, []).append(m.key)
    for keys in by_id.values():
        assert same_thread(result, *keys)
    for m in messages:
        cited = [*m.references, *([m.in_reply_to] if m.in_reply_to else [])]
        for ref in cited:
            for other in by_id.get(ref, []):
                assert result[m.key] == result[other]


@settings(max_examples=200)
@given(
    st.lists(
        st.builds(
            lambda k, mid, irt, refs, subj, d: (k, mid, irt, tuple(refs), subj, d),
            st.integers(-(2**63), 2**63),
            st.none() | st.text(),
            st.none() | st.text(),
            st.lists(st.text(max_size=8), max_size=6),
            st.text(),
            st.datetimes(timezones=st.just(UTC)),
        ),
        max_size=20,
    ),
    st.sets(st.text(max_size=5), max_size=3),
)
def test_arbitrary_ids_and_subjects_never_crash(
    rows: list[tuple[int, str | None, str | None, tuple[str, ...], str, datetime]],
    people: set[str],
) -> None:
    messages = [
        ThreadInput(k, mid, irt, refs, subj, d, frozenset(people))
        for k, mid, irt, refs, subj, d in rows
    ]
    result = thread_messages(messages)
    assert set(result) == {m.key for m in messages}


@given(st.text())
def test_normalize_subject_is_idempotent_and_parse_never_crashes(text: str) -> None:
    once = normalize_subject(text)
    assert normalize_subject(once) == once
    for ident in parse_msgid_list(text):
        assert ident.startswith("<")
        assert ident.endswith(">")
        assert len(ident) > 2
        assert not any(ch.isspace() for ch in ident)


# --- Scale ----------------------------------------------------------------------------------


def generate_mailbox(conversations: int, seed: int = 7) -> tuple[list[ThreadInput], list[int]]:
    """A realistic mix: References chains, IRT-only replies, missing roots, Outlook orphans,
    INBOX+Sent duplicates. Returns the messages and, per message, its conversation number."""
    rng = random.Random(seed)
    messages: list[ThreadInput] = []
    truth: list[int] = []
    for conv in range(conversations):
        who = frozenset({f"client{conv % 997}@c.example"})
        start = T0 + timedelta(minutes=conv)
        ids: list[str] = []
        for step in range(rng.randint(1, 7)):
            mid = f"<c{conv}.{step}@x>"
            style = rng.random()
            refs: tuple[str, ...] = ()
            irt = None
            subject = f"Topic {conv}"
            if step:
                subject = f"Re: Topic {conv}"
                if style < 0.6:
                    refs = (ids[0], *ids[-10:]) if len(ids) > 10 else tuple(ids)
                    irt = ids[-1]
                elif style < 0.85:
                    irt = ids[-1]
                else:
                    subject = f"RE: Topic {conv}"  # Outlook: no threading headers at all
            ids.append(mid)
            if step == 0 and style < 0.1:
                continue  # the root was never synced: it lives on as a phantom
            copies = 2 if style > 0.95 else 1
            for _ in range(copies):
                messages.append(
                    ThreadInput(
                        key=len(messages),
                        message_id=mid,
                        in_reply_to=irt,
                        references=refs,
                        subject=subject,
                        date=start + timedelta(hours=step),
                        participants=who,
                    )
                )
                truth.append(conv)
    return messages, truth


def test_hundred_thousand_messages_thread_correctly() -> None:
    messages, truth = generate_mailbox(25_000)
    while len(messages) < 100_000:
        more, more_truth = generate_mailbox(2_000, seed=len(messages))
        offset = len(messages)
        base = max(truth) + 1
        for m, conv in zip(more, more_truth, strict=True):
            messages.append(
                ThreadInput(
                    key=m.key + offset,
                    message_id=m.message_id and m.message_id.replace("@x", f"@{base}"),
                    in_reply_to=m.in_reply_to and m.in_reply_to.replace("@x", f"@{base}"),
                    references=tuple(r.replace("@x", f"@{base}") for r in m.references),
                    subject=m.subject.replace("Topic ", f"Topic {base}-"),
                    date=m.date,
                    participants=m.participants,
                )
            )
            truth.append(base + conv)
    result = thread_messages(messages)
    assert len(result) == len(messages) >= 100_000
    thread_of: dict[int, str] = {}
    for m, conv in zip(messages, truth, strict=True):
        assert thread_of.setdefault(conv, result[m.key]) == result[m.key]
    assert len(set(thread_of.values())) == len(thread_of)


# --- StreamThreader, for mailboxes too big to hold: the same result ------------------------


def stream_thread(
    messages: list[ThreadInput],
) -> tuple[dict[int, str], dict[str, str | None]]:
    """Drive a StreamThreader the way the store does: ids numbered in sorted order,
    messages oldest first, then each question answered from the messages."""
    numbers = {
        ident: n for n, ident in enumerate(sorted({i for m in messages for i in mentioned_ids(m)}))
    }
    ordered = sorted(messages, key=lambda m: (to_micros(m.date), m.key))
    threader = StreamThreader(len(numbers))
    for m in ordered:
        own = m.message_id.strip() if m.message_id else ""
        threader.add(
            m.key,
            to_micros(m.date),
            numbers[own] if own else None,
            numbers[m.in_reply_to] if m.in_reply_to else None,
            [numbers[r] for r in m.references if r],
        )
    by_key = {m.key: m for m in messages}
    for component, key in enumerate(threader.head_keys()):
        threader.set_subject(component, by_key[key].subject)
    for ident, n in numbers.items():  # in number order, as the store streams them
        if threader.needs_name(n):
            threader.set_name(n, ident)
    threader.join_by_subject(lambda keys: {k: by_key[k].participants for k in keys})
    threads = dict(threader.assignments())
    return threads, {tid: threader.subject_key(tid) for tid in set(threads.values())}


@settings(max_examples=500)
@given(small_mailboxes())
def test_the_stream_threader_gives_what_the_in_memory_threader_gives(
    messages: list[ThreadInput],
) -> None:
    assert stream_thread(messages) == thread_messages_keyed(messages)


def test_an_orphan_reply_joins_by_subject_and_asks_only_for_those_participants() -> None:
    t0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    messages = [
        ThreadInput(1, "<a@x>", None, (), "Project alpha", t0, frozenset({"c@client"})),
        # An Outlook reply that dropped In-Reply-To and References.
        ThreadInput(
            2,
            "<b@x>",
            None,
            (),
            "RE: Project alpha",
            t0 + timedelta(days=1),
            frozenset({"c@client"}),
        ),
        ThreadInput(
            3, "<c@x>", None, (), "Unrelated", t0 + timedelta(days=2), frozenset({"d@other"})
        ),
    ]
    threads, keys = stream_thread(messages)
    assert threads[1] == threads[2] != threads[3]
    assert (threads, keys) == thread_messages_keyed(messages)
    numbers = {"<a@x>": 0, "<b@x>": 1, "<c@x>": 2}
    threader = StreamThreader(3)
    for m in messages:
        threader.add(m.key, to_micros(m.date), numbers[m.message_id or ""], None, [])
    for component, key in enumerate(threader.head_keys()):
        threader.set_subject(component, messages[key - 1].subject)
    for ident, n in numbers.items():
        if threader.needs_name(n):
            threader.set_name(n, ident)
    asked: list[int] = []

    def participants_of(keys: list[int]) -> dict[int, frozenset[str]]:
        asked.extend(keys)
        return {k: messages[k - 1].participants for k in keys}

    threader.join_by_subject(participants_of)
    assert sorted(asked) == [1, 2]
    assert dict(threader.assignments()) == threads


def test_messages_out_of_order_and_steps_out_of_turn_are_errors() -> None:
    threader = StreamThreader(2)
    threader.add(5, 100, 0, None, [])
    with pytest.raises(ValueError, match="oldest first"):
        threader.add(4, 100, 1, None, [])
    with pytest.raises(ValueError, match="out of range"):
        threader.add(6, 101, 2, None, [])
    threader.head_keys()
    with pytest.raises(RuntimeError, match="done step called during subjects"):
        threader.subject_key("t000000000000")
    with pytest.raises(ValueError, match="given no Message-ID"):
        threader.join_by_subject(lambda keys: {})


def test_an_empty_mailbox_has_no_threads() -> None:
    threader = StreamThreader(0)
    assert list(threader.head_keys()) == []
    threader.join_by_subject(lambda keys: {})
    assert list(threader.assignments()) == []
    assert threader.subject_key("t000000000000") is None
