"""Unit tests for ghostwatch.compose: the follow-up as a threaded reply, its MIME shape,
and the refusal of header values that would inject headers or recipients.

Every message is checked the way a client sees it: serialized with ``email.policy.SMTP``
and parsed back with ``email.policy.default``.
"""

from __future__ import annotations

import copy
import dataclasses
import email
import email.policy
import pickle
import re
from datetime import UTC, datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostwatch.compose import (
    MAX_REFERENCES,
    Attachment,
    ComposeError,
    HeaderInjectionError,
    ThreadContext,
    compose,
    make_message_id,
    reply_subject,
    safe_header_value,
)
from ghostwatch.errors import GhostwatchError
from ghostwatch.threads import normalize_subject

ROME = timezone(timedelta(hours=1))
NOW = datetime(2026, 11, 28, 10, 15, tzinfo=ROME)
OWN_ID = "<20261128T091500.ab12cd34ef@rossi.example>"
OUTLOOK_ID = "<DB9PR07MB7771F2C1D2E3F4A5B6C7D8E9F0A1B2C3@DB9PR07MB7771.eurprd07.prod.outlook.com>"
THREAD = ThreadContext(
    subject="Brand identity: final files",
    message_ids=("<first@rossi.example>", "<second@acme.example>", "<third@rossi.example>"),
    reply_to_message_id="<third@rossi.example>",
    to_address="mario@acme.example",
    to_name="Mario Verdi",
)
PDF = b"%PDF-1.7\n" + bytes(range(256)) + b"\r\n\r.\n%%EOF\n"
INJECTION = "Acme\r\nBcc: evil@attacker.example"

# Text without the characters safe_header_value refuses.
CLEAN = st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"])


def build(**overrides: Any) -> EmailMessage:
    """compose() with THREAD and sample values; ThreadContext fields may be overridden too."""
    thread_fields: dict[str, Any] = {
        f.name: overrides.pop(f.name) for f in dataclasses.fields(THREAD) if f.name in overrides
    }
    kwargs: dict[str, Any] = {
        "account_address": "anna@rossi.example",
        "display_name": "Anna Rossi",
        "thread": dataclasses.replace(THREAD, **thread_fields),
        "text": "Hi Mario,\njust checking in on the final files.\n",
        "html": None,
        "message_id": OWN_ID,
        "now": NOW,
    }
    kwargs.update(overrides)
    return compose(**kwargs)


def wire(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=email.policy.SMTP)


def roundtrip(msg: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(wire(msg), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def _normalized_body(text: str) -> str:
    """What a text body reads as after the wire: LF line ends, one final line break."""
    return text.replace("\r\n", "\n").replace("\r", "\n").removesuffix("\n") + "\n"


# --- threading headers ---------------------------------------------------------------------


def test_in_reply_to_is_the_answered_message() -> None:
    parsed = roundtrip(build())
    assert parsed["In-Reply-To"] == "<third@rossi.example>"


def test_references_list_thread_ids_in_date_order_ending_with_the_parent() -> None:
    parsed = roundtrip(build())
    assert parsed["References"].split() == [
        "<first@rossi.example>",
        "<second@acme.example>",
        "<third@rossi.example>",
    ]


def test_references_leave_out_ids_dated_after_the_parent() -> None:
    """RFC 5322 §3.6.4: References are the parent's ancestors plus the parent, so the
    parent is always last (threaders take the last id as the parent)."""
    parsed = roundtrip(build(reply_to_message_id="<second@acme.example>"))
    assert parsed["References"].split() == ["<first@rossi.example>", "<second@acme.example>"]
    assert parsed["In-Reply-To"] == "<second@acme.example>"


def test_references_append_a_parent_missing_from_the_thread_ids() -> None:
    parsed = roundtrip(build(reply_to_message_id="<elsewhere@acme.example>"))
    assert parsed["References"].split() == [*THREAD.message_ids, "<elsewhere@acme.example>"]


def test_references_with_no_thread_ids_hold_just_the_parent() -> None:
    parsed = roundtrip(build(message_ids=()))
    assert parsed["References"] == "<third@rossi.example>"


def test_references_drop_duplicate_ids_keeping_the_first() -> None:
    ids = ("<a@x.example>", "<b@x.example>", "<a@x.example>", "<c@x.example>")
    parsed = roundtrip(build(message_ids=ids, reply_to_message_id="<c@x.example>"))
    assert parsed["References"].split() == ["<a@x.example>", "<b@x.example>", "<c@x.example>"]


def test_references_are_capped_to_the_root_plus_the_last_twenty() -> None:
    ids = tuple(f"<m{i:02d}@acme.example>" for i in range(30))
    parsed = roundtrip(build(message_ids=ids, reply_to_message_id=ids[-1]))
    refs = parsed["References"].split()
    assert len(refs) == MAX_REFERENCES + 1 == 21
    assert refs == [ids[0], *ids[-20:]]


def test_references_at_the_cap_are_not_trimmed() -> None:
    ids = tuple(f"<m{i:02d}@acme.example>" for i in range(21))
    parsed = roundtrip(build(message_ids=ids, reply_to_message_id=ids[-1]))
    assert parsed["References"].split() == list(ids)


def test_long_message_ids_are_written_verbatim_never_as_encoded_words() -> None:
    """The stock policy RFC 2047-encodes an id longer than a line; clients do not decode
    In-Reply-To, so the reply would leave the thread."""
    msg = build(message_ids=("<first@rossi.example>", OUTLOOK_ID), reply_to_message_id=OUTLOOK_ID)
    headers = header_block(wire(msg))
    assert b"=?" not in headers
    assert b"In-Reply-To: " + OUTLOOK_ID.encode() + b"\r\n" in headers
    assert b"References: <first@rossi.example>\r\n " + OUTLOOK_ID.encode() + b"\r\n" in headers
    parsed = roundtrip(msg)
    assert parsed["In-Reply-To"] == OUTLOOK_ID
    assert parsed["References"].split() == ["<first@rossi.example>", OUTLOOK_ID]


def test_messages_with_long_ids_survive_deepcopy_and_pickle_unchanged() -> None:
    """The outbox may copy or queue the message; the id headers must stay verbatim."""
    msg = build(message_ids=(OUTLOOK_ID,), reply_to_message_id=OUTLOOK_ID)
    for copied in (copy.deepcopy(msg), pickle.loads(pickle.dumps(msg))):  # noqa: S301 - own data
        assert wire(copied) == wire(msg)


def test_references_fold_between_ids_within_78_characters() -> None:
    ids = tuple(f"<message-number-{i:02d}@acme.example>" for i in range(10))
    raw = header_block(wire(build(message_ids=ids, reply_to_message_id=ids[-1])))
    lines = raw.decode("ascii").split("\r\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("References:"))
    folded = [lines[start]]
    folded += [line for line in lines[start + 1 :] if line.startswith(" ")][: len(ids)]
    assert all(len(line) <= 78 for line in folded)
    assert " ".join(folded).split()[1:] == list(ids)


@pytest.mark.parametrize(
    "bad",
    ["third@rossi.example", "<third@rossi.example", "<thi rd@rossi.example>", "<è@x.example>"],
)
def test_thread_ids_must_be_printable_ascii_in_angle_brackets(bad: str) -> None:
    with pytest.raises(ComposeError, match="In-Reply-To"):
        build(reply_to_message_id=bad)
    with pytest.raises(ComposeError, match="References"):
        build(message_ids=(bad,), reply_to_message_id="<ok@x.example>")


def test_thread_ids_without_an_at_sign_are_echoed() -> None:
    """Some clients write ids without "@"; a reply must still point at them."""
    parsed = roundtrip(build(message_ids=("<12345.ABC>",), reply_to_message_id="<12345.ABC>"))
    assert parsed["In-Reply-To"] == "<12345.ABC>"


# --- subject -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("X", "Re: X"),
        ("Re: X", "Re: X"),
        ("RE: Re: X", "Re: X"),
        ("Re: RE: re: X", "Re: X"),
        ("R: X", "Re: X"),
        ("RIF: X", "Re: X"),
        ("R: RIF: X", "Re: X"),
        ("AW: X", "Re: X"),
        ("Fwd: X", "Re: X"),
        ("I: X", "Re: X"),
        ("Re[2]: X", "Re: X"),
        ("Re\uff1aX", "Re: X"),  # the full-width colon of CJK clients
        ("[Ticket #12] Re: X", "Re: [Ticket #12] X"),
        ("Re: [Ticket #12] Re: X", "Re: [Ticket #12] X"),
        ("[Ticket #12]", "Re: [Ticket #12]"),
        ("Invoice: March", "Re: Invoice: March"),
        ("Ready: the files", "Re: Ready: the files"),
        ("Re:  Brand\t identity ", "Re: Brand identity"),
        ("Preventivo è pronto", "Re: Preventivo è pronto"),
        ("", "Re: "),
        ("Re:", "Re: "),
    ],
)
def test_reply_subject_keeps_a_single_re_prefix(original: str, expected: str) -> None:
    assert reply_subject(original) == expected
    assert reply_subject(original, "it") == expected


@pytest.mark.parametrize(
    "original", ["X", "RE: Re: X", "RIF: X", "[Ticket #12] Re: X", "[Ticket #12]", ""]
)
def test_reply_subject_normalizes_like_the_thread_it_answers(original: str) -> None:
    assert normalize_subject(reply_subject(original)) == normalize_subject(original)


def test_reply_subject_is_idempotent() -> None:
    once = reply_subject("AW: [EXT] Fwd: Angebot")
    assert once == "Re: [EXT] Angebot"
    assert reply_subject(once) == once


def test_subject_header_is_the_reply_subject() -> None:
    parsed = roundtrip(build(subject="R: RIF: Preventivo logo"))
    assert parsed["Subject"] == "Re: Preventivo logo"


def test_empty_subject_is_written_as_bare_re() -> None:
    parsed = roundtrip(build(subject=""))
    assert parsed["Subject"] == "Re: "


# --- From, To, Cc, Date, Message-ID ------------------------------------------------------------


def test_from_to_date_and_message_id_have_their_rfc_5322_shapes() -> None:
    msg = build()
    headers = header_block(wire(msg)).decode("ascii")
    assert "\r\nFrom: Anna Rossi <anna@rossi.example>\r\n" in "\r\n" + headers
    assert "\r\nTo: Mario Verdi <mario@acme.example>\r\n" in headers
    assert "\r\nDate: Sat, 28 Nov 2026 10:15:00 +0100\r\n" in headers
    assert "\r\nMessage-ID: " + OWN_ID + "\r\n" in headers
    assert "\r\nMIME-Version: 1.0\r\n" in headers
    parsed = roundtrip(msg)
    assert parsed["Date"].datetime == NOW
    assert parsed["Message-ID"] == OWN_ID
    assert "Cc" not in parsed


def test_headers_come_in_a_readable_order() -> None:
    msg = build(cc=("laura@acme.example",), extra_headers={"X-Ghostwatch-Step": "t1/2"})
    names = [n for n, _ in msg.items()]
    assert names[:10] == [
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
        "X-Ghostwatch-Step",
        "MIME-Version",
    ]


def test_from_without_display_name_is_the_bare_address() -> None:
    for name in (None, ""):
        parsed = roundtrip(build(display_name=name))
        assert parsed["From"] == "anna@rossi.example"


def test_to_without_a_name_is_the_bare_address() -> None:
    parsed = roundtrip(build(to_name=""))
    assert parsed["To"] == "mario@acme.example"


def test_cc_lists_every_address() -> None:
    parsed = roundtrip(build(cc=("laura@acme.example", "accounts@acme.example")))
    assert [a.addr_spec for a in parsed["Cc"].addresses] == [
        "laura@acme.example",
        "accounts@acme.example",
    ]


def test_display_name_with_a_comma_is_quoted_as_one_recipient() -> None:
    parsed = roundtrip(build(to_name='Verdi, Mario "Acme"'))
    (addr,) = parsed["To"].addresses
    assert addr.display_name == 'Verdi, Mario "Acme"'
    assert addr.addr_spec == "mario@acme.example"


def test_italian_accented_display_names_are_encoded_and_round_trip() -> None:
    msg = build(display_name="Niccolò Bianchi", to_name="Società Cooperativa Perché")
    headers = header_block(wire(msg))
    headers.decode("ascii")  # RFC 2047, not raw UTF-8
    assert b"=?utf-8?" in headers
    parsed = roundtrip(msg)
    assert parsed["From"].addresses[0].display_name == "Niccolò Bianchi"
    assert parsed["From"].addresses[0].addr_spec == "anna@rossi.example"
    assert parsed["To"].addresses[0].display_name == "Società Cooperativa Perché"


def test_long_accented_names_fold_into_encoded_words_that_decode_exactly() -> None:
    """RFC 2047 §6.2: white space between adjacent encoded words is dropped when decoding.
    (Python's own ``policy.default`` address parser keeps a space there; a conformant
    decoder, like ``email.header``'s, does not.)"""
    name = "Società Agricola Produttori Vinicoli di Montalcino — Amministrazione è Perché"
    raw = wire(build(to_name=name))
    value = email.message_from_bytes(raw, policy=email.policy.compat32)["To"]
    assert "\r\n " in value or "\n " in value  # folded over several lines
    assert str(make_header(decode_header(value))) == f"{name} <mario@acme.example>"


def test_date_needs_an_aware_now() -> None:
    with pytest.raises(ComposeError, match="timezone-aware"):
        build(now=datetime(2026, 11, 28, 10, 15))


def test_date_keeps_the_offset_of_now() -> None:
    parsed = roundtrip(build(now=datetime(2026, 11, 28, 9, 15, tzinfo=UTC)))
    assert parsed["Date"] == "Sat, 28 Nov 2026 09:15:00 +0000"


@pytest.mark.parametrize(
    "bad",
    ["ab12@rossi.example", "<ab12>", "<ab12@rossi@example>", "<ab 12@rossi.example>", "<@x>", ""],
)
def test_own_message_id_must_be_left_at_right_in_angle_brackets(bad: str) -> None:
    with pytest.raises(ComposeError, match="Message-ID"):
        build(message_id=bad)


def test_a_follow_up_is_not_marked_automated() -> None:
    """RFC 3834 markers would let the client's filters drop a message the user approved."""
    parsed = roundtrip(build(extra_headers={"X-Ghostwatch-Step": "t1/2"}))
    for name in ("Auto-Submitted", "Precedence", "X-Auto-Response-Suppress", "Bcc"):
        assert name not in parsed


def test_extra_headers_are_written() -> None:
    parsed = roundtrip(build(extra_headers={"X-Ghostwatch-Step": "7f3a/2"}))
    assert parsed["X-Ghostwatch-Step"] == "7f3a/2"


@pytest.mark.parametrize("name", ["Bcc", "from", "Message-ID", "References", "Content-Type"])
def test_extra_headers_cannot_override_headers_compose_sets(name: str) -> None:
    with pytest.raises(HeaderInjectionError, match="sets this header itself"):
        build(extra_headers={name: "x"})


# --- body and attachments ---------------------------------------------------------------------


def test_ascii_text_is_a_single_7bit_text_plain_part() -> None:
    parsed = roundtrip(build())
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content_charset() == "utf-8"
    assert parsed["Content-Transfer-Encoding"] == "7bit"
    assert parsed.get_content().replace("\r\n", "\n") == (
        "Hi Mario,\njust checking in on the final files.\n"
    )


def test_non_ascii_text_is_quoted_printable_and_round_trips() -> None:
    text = "Ciao Mario,\nè passato un po' dalla consegna: 1.200,00 €.\n"
    msg = build(text=text)
    assert b"=C3=A8 passato" in wire(msg)
    parsed = roundtrip(msg)
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert parsed.get_content().replace("\r\n", "\n") == text


@pytest.mark.parametrize(
    ("text", "cte"),
    [
        ("tab\there\n", "7bit"),
        ("page\x0cbreak\n", "quoted-printable"),
        ("next\x85line\n", "quoted-printable"),
        ("line\u2028separator\n", "quoted-printable"),
        ("nul\x00byte\n", "quoted-printable"),
        ("x" * 999 + "\n", "quoted-printable"),
        ("x" * 998 + "\n", "7bit"),
    ],
)
def test_text_that_7bit_cannot_carry_goes_quoted_printable(text: str, cte: str) -> None:
    """Only CR and LF end a body line (RFC 5322 §2.3); NEL, U+2028, form feed and NUL
    stay in the text and are not 7bit-clean."""
    parsed = roundtrip(build(text=text))
    assert parsed["Content-Transfer-Encoding"] == cte
    assert parsed.get_content().replace("\r\n", "\n") == text


def test_every_line_ends_in_crlf_and_fits_998_bytes() -> None:
    msg = build(
        text="word " * 1000 + "\n" + "x" * 3000,
        html="<p>" + "y" * 5000 + "</p>",
        subject="S" * 300,
        to_name="N" * 300,
        attachments=[Attachment("big.pdf", PDF * 50)],
    )
    raw = wire(msg)
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    parsed = roundtrip(msg)
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == (  # type: ignore[union-attr]
        "word " * 1000 + "\n" + "x" * 3000 + "\n"
    )


def test_html_is_a_multipart_alternative_after_the_text() -> None:
    html = "<p>Ciao Mario,</p><p>è passato un po'.</p>"
    parsed = roundtrip(build(text="Ciao Mario,\nè passato un po'.\n", html=html))
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[1].get_content_charset() == "utf-8"
    assert parts[1].get_content().replace("\r\n", "\n") == html + "\n"


def test_pdf_attachment_round_trips_byte_for_byte() -> None:
    parsed = roundtrip(
        build(html="<p>Hi</p>", attachments=[Attachment("invoice-2026-042.pdf", PDF)])
    )
    assert parsed.get_content_type() == "multipart/mixed"
    first, second = parsed.iter_parts()
    assert first.get_content_type() == "multipart/alternative"
    assert second.get_content_type() == "application/pdf"
    assert second.get_content_disposition() == "attachment"
    assert second.get_filename() == "invoice-2026-042.pdf"
    assert second["Content-Transfer-Encoding"] == "base64"
    assert second.get_content() == PDF


def test_attachments_without_html_follow_the_text_part() -> None:
    parsed = roundtrip(
        build(
            attachments=[
                Attachment("a.pdf", PDF),
                Attachment("notes.txt", b"plain\n", mime_type="text/plain"),
            ]
        )
    )
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "application/pdf", "text/plain"]
    assert parts[0].get_content_disposition() is None
    assert [p.get_filename() for p in parts[1:]] == ["a.pdf", "notes.txt"]
    assert parts[1].get_content() == PDF


def test_non_ascii_attachment_filename_uses_rfc_2231() -> None:
    msg = build(attachments=[Attachment("fattura così à.pdf", PDF)])
    assert b"filename*=utf-8''fattura%20cos%C3%AC%20%C3%A0.pdf" in wire(msg)
    (att,) = roundtrip(msg).iter_attachments()
    assert att.get_filename() == "fattura così à.pdf"
    assert att.get_content() == PDF


def test_long_non_ascii_attachment_filename_is_continued_and_round_trips() -> None:
    name = "Preventivo e fattura per il progetto di identità visiva della Società — 2026.pdf"
    raw = wire(build(attachments=[Attachment(name, PDF)]))
    assert b"filename*0*=utf-8''" in raw  # RFC 2231 §3 continuations
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    (att,) = email.message_from_bytes(raw, policy=email.policy.default).iter_attachments()
    assert att.get_filename() == name


@pytest.mark.parametrize("name", ["../invoice.pdf", "dir/invoice.pdf", "C:\\x.pdf", "", " ", ".."])
def test_attachment_filename_with_a_path_is_refused(name: str) -> None:
    with pytest.raises(ComposeError, match="filename"):
        build(attachments=[Attachment(name, PDF)])


@pytest.mark.parametrize("name", ["invoice\r\n.pdf", "invoice\x00.pdf", "=?utf-8?q?a=0A?=.pdf"])
def test_attachment_filename_with_control_characters_is_refused(name: str) -> None:
    with pytest.raises(HeaderInjectionError):
        build(attachments=[Attachment(name, PDF)])


@pytest.mark.parametrize("mime", ["pdf", "multipart/mixed", "message/rfc822", "application/"])
def test_attachment_mime_type_must_be_a_file_type(mime: str) -> None:
    with pytest.raises(ComposeError, match="MIME type"):
        build(attachments=[Attachment("a.pdf", PDF, mime_type=mime)])


def test_body_that_is_not_utf8_encodable_is_refused() -> None:
    with pytest.raises(ComposeError, match="text body"):
        build(text="broken \udcff byte")


# --- header injection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"to_name": INJECTION}, id="client-name"),
        pytest.param({"subject": "Invoice\r\nBcc: evil@attacker.example"}, id="subject"),
        pytest.param({"subject": "Invoice\nBcc: evil@attacker.example"}, id="subject-lf"),
        pytest.param({"to_address": "mario@acme.example\r\nBcc: evil@x.example"}, id="to-address"),
        pytest.param({"cc": ("ok@acme.example", "a@acme.example\nBcc: evil@x")}, id="cc"),
        pytest.param({"extra_headers": {"X-Ghostwatch-Step": "t/1\r\nBcc: e@x"}}, id="extra-value"),
        pytest.param({"extra_headers": {"X-Step\r\nBcc": "e@x"}}, id="extra-name"),
        pytest.param({"extra_headers": {"X-Step: e": "x"}}, id="extra-name-colon"),
        pytest.param({"display_name": INJECTION}, id="display-name"),
        pytest.param({"display_name": "Anna\x00Rossi"}, id="display-name-nul"),
        pytest.param({"to_name": "Acme\x85Bcc: evil@x"}, id="client-name-nel"),
        pytest.param({"subject": "Invoice\u2028Bcc: evil@x"}, id="subject-line-separator"),
        pytest.param(
            {"to_name": "=?utf-8?q?Acme=0D=0ABcc:_evil@x.example?="}, id="client-name-encoded-word"
        ),
        pytest.param({"display_name": "=?utf-8?b?QQ0KQmNjOiBlQHg=?="}, id="display-name-base64-ew"),
        pytest.param({"reply_to_message_id": "<a@b>\r\nBcc: e@x"}, id="in-reply-to"),
        pytest.param({"message_ids": ("<a@b>\nBcc: e@x",)}, id="references"),
        pytest.param({"message_id": "<a@b>\r\nBcc: e@x"}, id="message-id"),
    ],
)
def test_header_injection_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(HeaderInjectionError):
        build(**overrides)


@pytest.mark.parametrize(
    "address",
    [
        "mario@acme.example, evil@attacker.example",
        "mario@acme.example;evil@attacker.example",
        "Evil <evil@attacker.example>",
        "mario@acme.example>",
        "mario@acme.example@attacker.example",
        "mario @acme.example",
        '"mario"@acme.example',
    ],
)
def test_addresses_that_smuggle_recipients_are_injection(address: str) -> None:
    with pytest.raises(HeaderInjectionError, match="not a single address"):
        build(to_address=address)
    with pytest.raises(HeaderInjectionError):
        build(cc=(address,))
    with pytest.raises(HeaderInjectionError):
        build(account_address=address)


@pytest.mark.parametrize(
    "address",
    ["mario", "mario@", "@acme.example", "mario@-acme.example", "mar..io@acme.example", "è@x.it"],
)
def test_malformed_addresses_are_refused(address: str) -> None:
    with pytest.raises(ComposeError, match="not an ASCII address"):
        build(to_address=address)


def test_errors_are_ghostwatch_errors() -> None:
    assert issubclass(HeaderInjectionError, ComposeError)
    assert issubclass(ComposeError, GhostwatchError)


@pytest.mark.parametrize(
    "value", ["Acme S.p.A.", "Tab\tseparated", "Café", "=?utf-8?q?Caf=C3=A9?="]
)
def test_safe_header_value_returns_clean_values_unchanged(value: str) -> None:
    assert safe_header_value("To", value) is value


@pytest.mark.parametrize(
    "value",
    [
        "a\rb",
        "a\nb",
        "a\r\nb",
        "a\x00b",
        "a\x1bb",
        "a\x7fb",
        "a\x85b",
        "a\u2028b",
        "a\u2029b",
        "a\udcffb",
        "=?utf-8?q?a=0D=0Ab?=",
        "=?UTF-8?Q?a=0Ab?=",
        "x=?utf-8?b?DQo=?=y",
        "=?utf-8?b?DQo?=",  # bad padding, still decoded by lenient readers
        "=?utf-7?q?a+AA0-b?=",
        "=?x-unknown?q?a=0Ab?=",
        "=?utf-8*it?q?a=00b?=",
        "=?unicode_escape?q?a\\r\\nb?=",  # Python decodes with any codec it knows
    ],
)
def test_safe_header_value_refuses_control_characters_plain_or_encoded(value: str) -> None:
    with pytest.raises(HeaderInjectionError, match="Subject"):
        safe_header_value("Subject", value)


# --- make_message_id -------------------------------------------------------------------------


def test_make_message_id_has_timestamp_token_and_domain() -> None:
    got = make_message_id("rossi.example", token="ab12cd34ef", now=NOW)
    assert got == "<20261128T091500.ab12cd34ef@rossi.example>"  # UTC timestamp


def test_make_message_id_without_now_is_token_at_domain() -> None:
    assert make_message_id("rossi.example", token="ab12cd34ef") == "<ab12cd34ef@rossi.example>"


def test_make_message_id_default_token_is_128_random_bits() -> None:
    first, second = make_message_id("rossi.example"), make_message_id("rossi.example")
    assert re.fullmatch(r"<[0-9a-f]{32}@rossi\.example>", first)
    assert first != second


def test_make_message_id_is_accepted_by_compose() -> None:
    own = make_message_id("rossi.example", now=NOW)
    assert roundtrip(build(message_id=own))["Message-ID"] == own


@pytest.mark.parametrize(
    "domain",
    [
        "",
        "rossi example",
        "rossi.example>",
        "a@rossi.example",
        "rossi_example.com",
        "-rossi.example",
        "rossi..example",
        "rossì.example",
        "rossi.example\r\n",
    ],
)
def test_make_message_id_refuses_a_bad_domain(domain: str) -> None:
    with pytest.raises(ComposeError, match="domain"):
        make_message_id(domain, token="ab12cd34ef")


@pytest.mark.parametrize("token", ["short", "has space1", "a@b.c.d.e", "x" * 129])
def test_make_message_id_refuses_a_bad_token(token: str) -> None:
    with pytest.raises(ComposeError, match="token"):
        make_message_id("rossi.example", token=token)


def test_make_message_id_needs_an_aware_now() -> None:
    with pytest.raises(ComposeError, match="timezone-aware"):
        make_message_id("rossi.example", now=datetime(2026, 11, 28))


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    subject=st.text(CLEAN, max_size=200),
    text=st.text(
        st.one_of(
            st.sampled_from("\r\n\t\x00\x0c\x85\u2028 .é€"),
            st.characters(exclude_categories=["Cs"]),
        ),
        max_size=400,
    ),
)
def test_clean_subjects_and_any_text_bodies_round_trip(subject: str, text: str) -> None:
    """Without control characters in the subject, compose never raises and a client reads
    back the reply subject and the body (with normalized line ends). Bodies may hold
    anything encodable, control characters included: they never reach a header."""
    parsed = roundtrip(build(subject=subject, text=text))
    assert parsed["Subject"] == reply_subject(subject)
    assert parsed.get_content().replace("\r\n", "\n") == _normalized_body(text)


def _squeezed(text: str) -> str:
    return "".join(text.split())


@settings(max_examples=300, deadline=None)
@given(display_name=st.text(CLEAN, max_size=80), to_name=st.text(CLEAN, max_size=80))
def test_clean_names_never_raise_and_come_back_as_one_recipient_each(
    display_name: str, to_name: str
) -> None:
    """White space is compared squeezed out: leading and trailing blanks of a phrase are
    not kept by RFC 5322, and Python's parser adds a space between adjacent encoded words
    (see the exact-decoding test above)."""
    raw = wire(build(display_name=display_name, to_name=to_name))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    (sender,) = parsed["From"].addresses
    (recipient,) = parsed["To"].addresses
    assert sender.addr_spec == "anna@rossi.example"
    assert recipient.addr_spec == "mario@acme.example"
    assert _squeezed(sender.display_name) == _squeezed(display_name)
    assert _squeezed(recipient.display_name) == _squeezed(to_name)
    assert "Bcc" not in parsed


@settings(max_examples=300, deadline=None)
@given(
    before=st.text(CLEAN, max_size=40),
    newline=st.sampled_from(["\r", "\n", "\r\n"]),
    after=st.text(CLEAN, max_size=40),
    field=st.sampled_from(["subject", "to_name", "display_name"]),
)
def test_a_cr_or_lf_in_the_subject_or_a_name_is_always_refused(
    before: str, newline: str, after: str, field: str
) -> None:
    with pytest.raises(HeaderInjectionError):
        build(**{field: before + newline + after})
