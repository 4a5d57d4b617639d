"""Return dates in out-of-office auto-replies: body text extraction and date finding."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostwatch.absence import ReturnDate, extract_text, find_return_date

# A Friday. Every sent_at below is fixed; nothing reads the clock.
SENT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
DEC_20 = datetime(2026, 12, 20, 9, 30, tzinfo=UTC)


def d(month: int, day: int, year: int = 2026) -> date:
    return date(year, month, day)


# (subject, body, sent_at, expected first day back or None)
CASES = [
    pytest.param(
        "Out of Office",
        "Thank you for your email.\nI am out of the office until 7 December with limited "
        "access to email. For urgent matters please contact office@acme.example.\nKind regards,"
        "\nJohn",
        SENT,
        d(12, 8),
        id="en-until-month-name",
    ),
    pytest.param(
        "Annual leave",
        "Hi, I'm on annual leave and will be back on Monday 7th December. Best, Sarah",
        SENT,
        d(12, 7),
        id="en-back-on-weekday-and-date",
    ),
    pytest.param(
        "Away until Dec 7",
        "",
        SENT,
        d(12, 8),
        id="en-until-abbreviated-month-in-subject",
    ),
    pytest.param(
        "Out of office",
        "I will be out of the office through Dec. 7 and return Dec. 9.",
        SENT,
        d(12, 9),
        id="en-return-beats-through",
    ),
    pytest.param(
        "Out of office",
        "I am travelling. I will be back on 2026-12-07.",
        SENT,
        d(12, 7),
        id="en-back-iso-date",
    ),
    pytest.param(
        "Out of office",
        "Returning on 07/12. Please expect a delay in my response.",
        SENT,
        d(12, 7),
        id="en-numeric-day-first",
    ),
    pytest.param(
        "Out of office",
        "Please note that I am out of the office until Tuesday, 12/8.",
        SENT,
        d(12, 9),
        id="en-numeric-month-first-when-only-it-agrees-with-weekday",
    ),
    pytest.param(
        "Out of office",
        "I'm returning on 12/13 and will reply then.",
        SENT,
        d(12, 13),
        id="en-numeric-month-first-only-when-day-first-impossible",
    ),
    pytest.param(
        "On leave",
        "I am on leave from 30 November to 4 December inclusive and will respond on my return.",
        SENT,
        d(12, 5),
        id="en-from-to-range",
    ),
    pytest.param(
        "Out of office",
        "I'm on annual leave 30 Nov - 4 Dec. Urgent? Call the office.",
        SENT,
        d(12, 5),
        id="en-dash-range-without-cue-word",
    ),
    pytest.param(
        "Out of office",
        "Thanks for reaching out! I'm back on Monday.",
        SENT,
        d(11, 23),
        id="en-weekday-only-is-next-such-weekday",
    ),
    pytest.param(
        "Out today",
        "I'm out of the office today, back tomorrow.",
        SENT,
        d(11, 21),
        id="en-tomorrow",
    ),
    pytest.param(
        "Out of office",
        "I will not be back in the office until Monday, December 7th.",
        SENT,
        d(12, 7),
        id="en-not-back-until-names-first-day-back",
    ),
    pytest.param(
        "Out of office",
        "I am out of the office until 5 January. Happy holidays!",
        DEC_20,
        d(1, 6, 2027),
        id="en-year-boundary-until-january",
    ),
    pytest.param(
        "Out of office",
        "I am out of the office until 18 November.",
        SENT,
        None,
        id="en-stale-responder-date-in-past",
    ),
    pytest.param(
        "Out of office",
        "I am out of the office until 7 December 2025.",
        SENT,
        None,
        id="en-explicit-year-in-past",
    ),
    pytest.param(
        "Sabbatical",
        "I am on sabbatical until 30 June 2028 and not reading email.",
        SENT,
        None,
        id="en-beyond-max-ahead",
    ),
    pytest.param(
        "Out of office",
        "Thank you for your message. I am currently out of the office with limited access to "
        "email and will get back to you as soon as possible.",
        SENT,
        None,
        id="en-no-date",
    ),
    pytest.param(
        "Out of office",
        "I'm out of office until 4 December.\n\nOn Thu, 19 Nov 2026 at 09:12, Alice "
        "<alice@example.test> wrote:\n> Could you confirm the scope until 15 December?\n",
        SENT,
        d(12, 5),
        id="en-quoted-original-message-ignored",
    ),
    pytest.param(
        "Out of office",
        "I am out of the office until 4 December.\n\n________________________________\n"
        "From: Alice Example <alice@example.test>\nSent: Thursday, 19 November 2026 09:12\n"
        "To: Bob Client <bob@client.test>\nSubject: Website redesign\n\n"
        "Hi Bob, could you send your feedback until 15 December?",
        SENT,
        d(12, 5),
        id="en-outlook-original-message-block-ignored",
    ),
    pytest.param(
        "Automatic reply: Feedback until Friday 18 December?",
        "I am out of the office until 4 December.",
        SENT,
        d(12, 5),
        id="en-exchange-subject-carries-original-subject",
    ),
    pytest.param(
        "Fuori ufficio",
        "Buongiorno,\nsono fuori ufficio fino al 7 dicembre con accesso limitato alla posta.\n"
        "Cordiali saluti",
        SENT,
        d(12, 8),
        id="it-fino-al",
    ),
    pytest.param(
        "Assente",
        "Grazie per la mail. Rientrerò il 7 dicembre e risponderò al più presto.",
        SENT,
        d(12, 7),
        id="it-rientrero-il",
    ),
    pytest.param(
        "Fuori sede",
        "Sarò di nuovo in ufficio lunedì 7 dicembre.",
        SENT,
        d(12, 7),
        id="it-di-nuovo-in-ufficio-weekday-and-date",
    ),
    pytest.param(
        "In ferie",
        "Sarò assente dal 1 al 7 dicembre. Per urgenze: 02 1234567.",
        SENT,
        d(12, 8),
        id="it-dal-al-range",
    ),
    pytest.param(
        "Fuori ufficio fino al 4/12",
        "",
        SENT,
        d(12, 5),
        id="it-numeric-in-subject",
    ),
    pytest.param(
        "Fuori sede",
        "Oggi sono fuori sede, torno domani.",
        SENT,
        d(11, 21),
        id="it-torno-domani",
    ),
    pytest.param(
        "In ferie",
        "Sono in ferie. Tornerò operativo da lunedì 7.",
        SENT,
        d(12, 7),
        id="it-weekday-with-day-and-no-month",
    ),
    pytest.param(
        "Assente",
        "Rientro previsto per l'8 dicembre.",
        SENT,
        d(12, 8),
        id="it-elided-article-rientro",
    ),
    pytest.param(
        "Abwesend",
        "Vielen Dank für Ihre Nachricht. Ich bin bis 7. Dezember nicht im Büro.",
        SENT,
        d(12, 8),
        id="de-bis-month-name",
    ),
    pytest.param(
        "Abwesend",
        "Ich bin bis zum 07.12.2026 nicht erreichbar. Ihre Nachricht wird nicht weitergeleitet.",
        SENT,
        d(12, 8),
        id="de-bis-zum-numeric",
    ),
    pytest.param(
        "Abwesend",
        "Ich bin bis einschl. 4.12. nicht erreichbar.",
        SENT,
        d(12, 5),
        id="de-bis-abbreviation-then-numeric-without-year",
    ),
    pytest.param(
        "Abwesend",
        "Ich bin im Urlaub und ab dem 8. Dezember wieder erreichbar.",
        SENT,
        d(12, 8),
        id="de-ab-wieder",
    ),
    pytest.param(
        "Urlaub",
        "Ich bin ab dem 1. Dezember im Urlaub.",
        SENT,
        None,
        id="de-ab-without-wieder-is-start-of-absence",
    ),
    pytest.param(
        "Dienstreise",
        "Ich bin bis 11. Dezember auf Dienstreise, ab dem 7. Dezember bin ich aber wieder im "
        "Büro erreichbar.",
        SENT,
        d(12, 7),
        id="de-wieder-beats-later-bis",
    ),
    pytest.param(
        "Abwesend",
        "Ich bin ab Montag wieder im Büro.",
        SENT,
        d(11, 23),
        id="de-weekday-only",
    ),
    pytest.param(
        "Absence",
        "Bonjour, je suis absente jusqu'au 7 décembre inclus.",
        SENT,
        d(12, 8),
        id="fr-jusqu-au",
    ),
    pytest.param(
        "Absence",
        "Je serai de retour le 8 décembre. Cordialement.",
        SENT,
        d(12, 8),
        id="fr-de-retour-le",
    ),
    pytest.param(
        "Congés",
        "Je suis en congés du 1er au 7 décembre.",
        SENT,
        d(12, 8),
        id="fr-du-au-range",
    ),
    pytest.param(
        "Absence",
        "Je suis absent jusqu'au 04/12/2026.",
        SENT,
        d(12, 5),
        id="fr-numeric-with-year",
    ),
    pytest.param(
        "Fuera de la oficina",
        "Gracias por su mensaje. Estoy fuera de la oficina hasta el 7 de diciembre.",
        SENT,
        d(12, 8),
        id="es-hasta-el",
    ),
    pytest.param(
        "Vacaciones",
        "Vuelvo el 8 de diciembre.",
        SENT,
        d(12, 8),
        id="es-vuelvo-el",
    ),
    pytest.param(
        "Vacaciones",
        "Estaré de vacaciones del 1 al 7 de diciembre.",
        SENT,
        d(12, 8),
        id="es-del-al-range",
    ),
    pytest.param(
        "Fuera de la oficina",
        "Estaré de vuelta el 9/12.",
        SENT,
        d(12, 9),
        id="es-numeric",
    ),
    pytest.param(
        "Fuera de la oficina",
        "Regreso el lunes.",
        SENT,
        d(11, 23),
        id="es-weekday-only",
    ),
]


@pytest.mark.parametrize(("subject", "body", "sent_at", "expected"), CASES)
def test_return_day_of_realistic_auto_replies(
    subject: str, body: str, sent_at: datetime, expected: date | None
) -> None:
    """Each auto-reply yields the first calendar day back, or None when it states none."""
    result = find_return_date(subject, body, sent_at)
    assert (result.day if result else None) == expected


def test_result_carries_phrase_and_language() -> None:
    """The phrase is the cue and date as written, for explanations; the language is the cue's."""
    result = find_return_date("", "Sono fuori ufficio fino al 7 dicembre.", SENT)
    assert result == ReturnDate(day=d(12, 8), phrase="fino al 7 dicembre", language="it")


def test_phrase_is_at_most_80_characters() -> None:
    body = "I will be back " + "in the office " * 2 + "on Monday 7th December 2026."
    result = find_return_date("", body, SENT)
    assert result is not None
    assert len(result.phrase) <= 80


def test_date_beyond_max_ahead_is_ignored() -> None:
    """A cap shorter than the absence gives None, not a clamped date."""
    body = "I am out of the office until 7 December."
    assert find_return_date("", body, SENT, max_ahead=timedelta(days=10)) is None
    assert find_return_date("", body, SENT, max_ahead=timedelta(days=18)) is not None


def test_sent_day_is_taken_in_the_auto_replys_own_offset() -> None:
    """23:30 on Sunday in New York is Monday in UTC; "back on Monday" means the next day."""
    sunday_night = datetime(2026, 11, 22, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    result = find_return_date("", "Back on Monday.", sunday_night)
    assert result is not None
    assert result.day == d(11, 23)


def test_weekday_named_on_the_sent_day_means_next_week() -> None:
    result = find_return_date("", "I'm back on Friday.", SENT)  # SENT is a Friday
    assert result is not None
    assert result.day == d(11, 27)


# -- encoded bodies, end to end ----------------------------------------------------------

OUTLOOK_HTML = (
    b'<html xmlns:v=3D"urn:schemas-microsoft-com:vml" xmlns:o=3D"urn:schemas-micr=\r\n'
    b'osoft-com:office:office"><head><meta http-equiv=3D"Content-Type" content=3D=\r\n'
    b'"text/html; charset=3Dutf-8"><meta name=3D"Generator" content=3D"Microsoft Wo=\r\n'
    b'rd 15 (filtered medium)"><style><!--\r\n'
    b"/* Font Definitions */\r\n"
    b"@font-face {font-family:Calibri; panose-1:2 15 5 2 2 2 4 3 2 4;}\r\n"
    b"p.MsoNormal, li.MsoNormal, div.MsoNormal {margin:0cm; font-size:11.0pt;}\r\n"
    b'--></style></head><body lang=3D"EN-GB" link=3D"#0563C1" vlink=3D"#954F72" s=\r\n'
    b'tyle=3D"word-wrap:break-word"><div class=3D"WordSection1"><p class=3D"MsoNo=\r\n'
    b'rmal">Thank you for your email.<o:p></o:p></p><p class=3D"MsoNormal"><o:p>&n=\r\n'
    b'bsp;</o:p></p><p class=3D"MsoNormal">I am out of the office until Friday 4<s=\r\n'
    b"up>th</sup>&nbsp;December with no access to email. I will respond to your me=\r\n"
    b'ssage on my return.<o:p></o:p></p><p class=3D"MsoNormal">Kind regards,<o:p><=\r\n'
    b'/o:p></p><p class=3D"MsoNormal">Emma Clarke<o:p></o:p></p></div></body></htm=\r\n'
    b"l>\r\n"
)

QP_ITALIAN = (
    b"Gentile cliente,\r\n"
    b"\r\n"
    b"sar=C3=B2 fuori ufficio fino a venerd=C3=AC 4 dicembre con accesso limitat=\r\n"
    b"o alla posta. Rientrer=C3=B2 luned=C3=\r\n"
    b"=AC 7 dicem=\r\n"
    b"bre e risponder=C3=B2 al pi=C3=B9 presto.\r\n"
    b"\r\n"
    b"Cordiali saluti,\r\n"
    b"Marco\r\n"
)

GERMAN_PLAIN = (
    "Vielen Dank für Ihre Nachricht.\r\n\r\n"
    "Ich bin bis einschließlich 4. Dezember 2026 nicht im Büro und habe keinen Zugriff "
    "auf meine E-Mails. Ab dem 7. Dezember bin ich wieder für Sie erreichbar.\r\n\r\n"
    "Mit freundlichen Grüßen\r\nJürgen Weiß\r\n"
)


def _mime_base64(text: str) -> bytes:
    return base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")


# Exchange's multipart/alternative, cut by the 4 KB snippet inside the HTML part.
MULTIPART_BASE64 = (
    b"--_000_AM0PR07MB4417ABCDEF_\r\n"
    b'Content-Type: text/plain; charset="utf-8"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + _mime_base64(GERMAN_PLAIN) + b"\r\n"
    b"--_000_AM0PR07MB4417ABCDEF_\r\n"
    b'Content-Type: text/html; charset="utf-8"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + _mime_base64("<html><head></head><body><p>Vielen Dank f")[:40]
)

# Captured from Pigeonhole Sieve 0.5.19 (Dovecot 2.3.19) on loopback: `vacation :days 1
# :subject "Fuori ufficio" "..."` answering a message. Its header said Date: Sat, 28 Nov
# 2026 10:08:31 +0000, Content-Type: text/plain; charset=utf-8 and
# Content-Transfer-Encoding: 8bit; this is the BODY[TEXT] as IMAP returned it.
SIEVE_VACATION_BODY = (
    b"Buongiorno,\r\n"
    b"sono fuori ufficio fino a venerd\xc3\xac 4 dicembre con accesso limitato alla posta.\r\n"
    b"Rientrer\xc3\xb2 luned\xc3\xac 7 dicembre e risponder\xc3\xb2 al pi\xc3\xb9 presto.\r\n"
    b"\r\n"
    b"Per urgenze: ufficio@example.test\r\n"
    b"\r\n"
    b"Giulia Rossi\r\n"
)
SIEVE_SENT = datetime(2026, 11, 28, 10, 8, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "hint", "subject", "sent_at", "expected"),
    [
        pytest.param(
            OUTLOOK_HTML,
            'text/html; charset="utf-8"',
            "Automatic reply: Website redesign",
            SENT,
            d(12, 5),
            id="en-outlook-html-quoted-printable",
        ),
        pytest.param(
            QP_ITALIAN, None, "Fuori ufficio", SENT, d(12, 7), id="it-quoted-printable-soft-breaks"
        ),
        pytest.param(
            MULTIPART_BASE64,
            'multipart/alternative; boundary="_000_AM0PR07MB4417ABCDEF_"',
            "Automatische Antwort: Angebot",
            SENT,
            d(12, 7),
            id="de-base64-plain-part-in-multipart",
        ),
        pytest.param(
            MULTIPART_BASE64,
            None,
            "Automatische Antwort: Angebot",
            SENT,
            d(12, 7),
            id="de-base64-multipart-boundary-sniffed",
        ),
        pytest.param(
            SIEVE_VACATION_BODY,
            "text/plain; charset=utf-8",
            "Fuori ufficio",
            SIEVE_SENT,
            d(12, 7),
            id="it-dovecot-sieve-vacation",
        ),
    ],
)
def test_return_day_of_encoded_bodies(
    raw: bytes, hint: str | None, subject: str, sent_at: datetime, expected: date
) -> None:
    """Raw BODY[TEXT] snippets go through extract_text, then find_return_date."""
    result = find_return_date(subject, extract_text(raw, hint), sent_at)
    assert result is not None
    assert result.day == expected


def test_quoted_printable_is_decoded_across_soft_line_breaks() -> None:
    """ "=C3=AC" is ì even when a soft break falls between its two octets."""
    text = extract_text(QP_ITALIAN)
    assert "Rientrerò lunedì 7 dicembre" in text
    assert "=" not in text


def test_outlook_html_becomes_plain_text() -> None:
    text = extract_text(OUTLOOK_HTML, 'text/html; charset="utf-8"')
    assert "until Friday 4th December with no access" in text
    assert "MsoNormal" not in text
    assert "font-face" not in text


def test_base64_plain_part_is_preferred_over_truncated_html() -> None:
    text = extract_text(MULTIPART_BASE64)
    assert text.startswith("Vielen Dank für Ihre Nachricht.\nIch bin bis einschließlich")
    assert "Content-Type" not in text


def test_extract_text_collapses_blanks_and_keeps_single_line_breaks() -> None:
    assert extract_text(b"  Out   of\toffice \r\n\r\n\r\n until  Monday ") == (
        "Out of office\nuntil Monday"
    )


def test_undeclared_latin1_body_falls_back_to_windows_1252() -> None:
    assert extract_text(b"Je suis absente jusqu'au 7 d\xe9cembre.") == (
        "Je suis absente jusqu'au 7 décembre."
    )


def test_snippet_cut_inside_a_utf8_character_keeps_the_rest() -> None:
    assert extract_text("Rientrerò lunedì".encode()[:-1]) == "Rientrerò luned"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage \x80\x81",
        b"--b\r\nContent-Type: text/plain\r\n",  # cut inside the part headers
        b"=\r\n=ZZ=4",
        b"<html><body><p>unterminated <b",
        b"QUJD" * 3000,
    ],
)
def test_extract_text_never_raises_on_odd_snippets(raw: bytes) -> None:
    assert isinstance(extract_text(raw, "multipart/mixed; boundary=b"), str)
    assert isinstance(extract_text(raw), str)


# -- properties --------------------------------------------------------------------------

_WORDS = st.sampled_from(
    [
        "until", "back on", "returning", "from", "to", "fino al", "dal", "al", "rientrerò",
        "bis", "ab", "wieder", "jusqu'au", "de retour le", "du", "au", "hasta el", "vuelvo el",
        "del", "Monday", "lunedì", "Montag", "demain", "mañana", "tomorrow", "December",
        "dicembre", "Dezember", "décembre", "diciembre", "January", "7", "31", "29", "12/07",
        "07.12.2026", "2026-12-07", "7.12.", "13/13", "-", ".", ",", "not", "\n", "> ", "'",
    ]
)  # fmt: skip
_TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(_WORDS, st.text(max_size=5)), max_size=40).map(" ".join),
)


@settings(max_examples=300, deadline=None)
@given(
    subject=_TEXT,
    body=_TEXT,
    sent_at=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-11))])),
    ahead=st.integers(min_value=-5, max_value=800),
)
def test_find_return_date_never_raises_and_stays_in_window(
    subject: str, body: str, sent_at: datetime, ahead: int
) -> None:
    max_ahead = timedelta(days=ahead)
    result = find_return_date(subject, body, sent_at, max_ahead=max_ahead)
    if result is not None:
        assert sent_at.date() <= result.day <= sent_at.date() + max_ahead
        assert len(result.phrase) <= 80
        assert result.language in {"en", "it", "de", "fr", "es"}


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=3000), hint=st.one_of(st.none(), st.text(max_size=80)))
def test_extract_text_never_raises(raw: bytes, hint: str | None) -> None:
    assert isinstance(extract_text(raw, hint), str)
