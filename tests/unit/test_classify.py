"""Tests for ghostwatch.classify: header-only classification and bounce parsing."""

from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostwatch.classify import (
    HEADER_FIELDS,
    BounceReport,
    Classification,
    Kind,
    classify,
    parse_bounce,
)

# No example database: a unit run leaves nothing behind in the work tree.
PROPERTY = settings(database=None, deadline=None, max_examples=200)


def headers(raw: bytes) -> Message:
    """Parse a header block the way the IMAP sync does."""
    return BytesHeaderParser(policy=compat32).parsebytes(raw)


def crlf(text: str) -> bytes:
    """A sample written with \\n line ends, as the CRLF bytes IMAP returns."""
    return text.replace("\n", "\r\n").encode("utf-8")


# -- realistic samples ---------------------------------------------------------------

DOVECOT_SIEVE_VACATION = crlf(
    """Return-Path: <>
Delivered-To: anna@freelancer.test
Message-ID: <dovecot-sieve-1715680000-12345-0@mx.client.test>
Date: Tue, 14 May 2024 11:06:40 +0200
From: Marco Bianchi <marco@client.test>
To: <anna@freelancer.test>
Subject: Auto: Quote for the new website
In-Reply-To: <quote-42@freelancer.test>
References: <quote-42@freelancer.test>
Auto-Submitted: auto-replied (vacation)
Precedence: bulk
X-Sieve: Pigeonhole Sieve 0.5.21
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

"""
)

POSTFIX_BOUNCE = crlf(
    """Return-Path: <>
Delivered-To: anna@freelancer.test
Received: by mx.freelancer.test (Postfix)
\tid 4F1A2B3C4D; Tue, 14 May 2024 10:02:13 +0200 (CEST)
Date: Tue, 14 May 2024 10:02:13 +0200 (CEST)
From: MAILER-DAEMON@mx.freelancer.test (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: anna@freelancer.test
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4F1A2B3C4D.1715673733/mx.freelancer.test"
Content-Transfer-Encoding: 8bit
Message-Id: <20240514080213.4F1A2B3C4D@mx.freelancer.test>

This is a MIME-encapsulated message.

--4F1A2B3C4D.1715673733/mx.freelancer.test
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.freelancer.test.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<nobody@client.test>: host mx.client.test[192.0.2.25] said: 550 5.1.1
    <nobody@client.test>: Recipient address rejected: User unknown in virtual
    mailbox table (in reply to RCPT TO command)

--4F1A2B3C4D.1715673733/mx.freelancer.test
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.freelancer.test
X-Postfix-Queue-ID: 4F1A2B3C4D
X-Postfix-Sender: rfc822; anna@freelancer.test
Arrival-Date: Tue, 14 May 2024 10:02:11 +0200 (CEST)

Final-Recipient: rfc822; nobody@client.test
Original-Recipient: rfc822;nobody@client.test
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.client.test
Diagnostic-Code: smtp; 550 5.1.1 <nobody@client.test>: Recipient address
    rejected: User unknown in virtual mailbox table

--4F1A2B3C4D.1715673733/mx.freelancer.test
Content-Description: Undelivered Message
Content-Type: message/rfc822

Return-Path: <anna@freelancer.test>
Received: from laptop (unknown [198.51.100.7])
\tby mx.freelancer.test (Postfix) with ESMTPSA id 4F1A2B3C4D
\tfor <nobody@client.test>; Tue, 14 May 2024 10:02:11 +0200 (CEST)
Message-ID: <quote-42@freelancer.test>
Date: Tue, 14 May 2024 10:02:10 +0200
From: Anna Rossi <anna@freelancer.test>
To: nobody@client.test
Subject: Quote for the new website
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hi, here is the quote we discussed.
Message-ID: <not-this-one@elsewhere.test>

--4F1A2B3C4D.1715673733/mx.freelancer.test--
"""
)

# The same report returning only the original's header block (RFC 3464 §2, RET=HDRS).
POSTFIX_BOUNCE_HEADERS_ONLY = POSTFIX_BOUNCE.replace(
    b"Content-Type: message/rfc822", b"Content-Type: text/rfc822-headers"
).replace(
    b"\r\nHi, here is the quote we discussed.\r\nMessage-ID: <not-this-one@elsewhere.test>", b""
)

GMAIL_DSN_FAILURE_HEADERS = crlf(
    """Return-Path: <>
Received: by 2002:a05:6a10:1234 with SMTP id abc; Tue, 14 May 2024 01:02:03 -0700 (PDT)
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: anna.freelancer@gmail.com
Auto-Submitted: auto-replied
Subject: Delivery Status Notification (Failure)
References: <quote-43@gmail.com>
In-Reply-To: <quote-43@gmail.com>
X-Failed-Recipients: typo@client.test
Message-ID: <6643e1b3.050a0220.bounce@mx.google.com>
Date: Tue, 14 May 2024 01:02:03 -0700 (PDT)
Content-Type: multipart/report; boundary="000000000000b0a1c5061861e9f1"; report-type=delivery-status

"""
)

GMAIL_DSN_DELAY = crlf(
    """Return-Path: <>
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: anna.freelancer@gmail.com
Auto-Submitted: auto-replied
Subject: Delivery Status Notification (Delay)
Message-ID: <6643e1b3.delay@mx.google.com>
Date: Tue, 14 May 2024 05:02:03 -0700 (PDT)
MIME-Version: 1.0
Content-Type: multipart/report; boundary="000000000000c1"; report-type=delivery-status

--000000000000c1
Content-Type: text/plain; charset="UTF-8"

** Message not delivered yet **

Your message to slow@client.test has not been delivered yet. Gmail will retry.

--000000000000c1
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Arrival-Date: Tue, 14 May 2024 01:02:03 -0700 (PDT)

Final-Recipient: rfc822; slow@client.test
Action: delayed
Status: 4.4.1
Diagnostic-Code: smtp; The recipient server did not accept our requests to connect.
Last-Attempt-Date: Tue, 14 May 2024 05:02:03 -0700 (PDT)
Will-Retry-Until: Wed, 15 May 2024 01:02:04 -0700 (PDT)

--000000000000c1
Content-Type: text/rfc822-headers; charset="UTF-8"

Message-ID: <invoice-7@freelancer.test>
From: Anna <anna.freelancer@gmail.com>
To: slow@client.test
Subject: Invoice 2024-007

--000000000000c1--
"""
)

EXIM_BOUNCE = crlf(
    """Return-path: <>
Envelope-to: anna@freelancer.test
From: Mail Delivery System <Mailer-Daemon@mail.freelancer.test>
To: anna@freelancer.test
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1s6lqm-0003Xy-2B@mail.freelancer.test>
X-Failed-Recipients: gone@client.test
Auto-Submitted: auto-replied
Date: Tue, 14 May 2024 10:02:13 +0200
Content-Type: text/plain; charset=us-ascii

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  gone@client.test
    SMTP error from remote mail server after RCPT TO:<gone@client.test>:
    550 5.1.1 User unknown

------ This is a copy of the message, including all the headers. ------

Return-path: <anna@freelancer.test>
Message-Id:
 <followup-3@freelancer.test>
From: Anna <anna@freelancer.test>
To: gone@client.test
Subject: Following up on the logo

Any news?
"""
)

EXCHANGE_AUTOMATIC_REPLY = crlf(
    """Return-Path: <>
From: Jane Doe <jane.doe@client.test>
To: Anna Rossi <anna@freelancer.test>
Subject: Automatic reply: Quote for the new website
Thread-Topic: Quote for the new website
Date: Tue, 14 May 2024 08:05:11 +0000
Message-ID: <PAXPR01MB1234.oof@PAXPR01MB1234.eurprd01.prod.outlook.com>
In-Reply-To: <quote-42@freelancer.test>
Auto-Submitted: auto-generated
X-Auto-Response-Suppress: All
X-MS-Exchange-Inbox-Rules-Loop: jane.doe@client.test
X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent
X-MS-Has-Attach:
Content-Type: text/plain; charset="us-ascii"
MIME-Version: 1.0

"""
)

ITALIAN_AUTOMATIC_REPLY = crlf(
    """From: Giulia Verdi <giulia@cliente.test>
To: anna@freelancer.test
Subject: =?utf-8?q?Risposta_automatica=3A_Fuori_sede?=
Date: Tue, 14 May 2024 10:05:00 +0200

"""
)

GERMAN_ABWESENHEITSNOTIZ = crlf(
    """From: Jens Weber <jens.weber@kunde.test>
To: anna@freelancer.test
Subject: Abwesenheitsnotiz: AW: Angebot Website
Date: Tue, 14 May 2024 10:05:00 +0200

"""
)

NEWSLETTER = crlf(
    """Return-Path: <bounces+8812-ab12-anna=freelancer.test@em.design-weekly.test>
From: Design Weekly <hello@design-weekly.test>
To: anna@freelancer.test
Subject: This week: 12 portfolio layouts that win clients
List-Unsubscribe: <https://design-weekly.test/u/ab12>, <mailto:unsub-ab12@design-weekly.test>
List-Unsubscribe-Post: List-Unsubscribe=One-Click
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="nl"

"""
)

HUMAN_REPLY = crlf(
    """Return-Path: <marco@client.test>
From: Marco Bianchi <marco@client.test>
To: Anna Rossi <anna@freelancer.test>
Subject: Re: Quote for the new website
In-Reply-To: <quote-42@freelancer.test>
References: <quote-42@freelancer.test>
Date: Tue, 14 May 2024 12:30:00 +0200
User-Agent: Mozilla Thunderbird
Content-Type: text/plain; charset=utf-8; format=flowed

"""
)

# A hand-written reply relayed by Exchange Online: it carries X-Auto-Response-Suppress.
OUTLOOK_HUMAN_REPLY = crlf(
    """From: Jane Doe <jane.doe@client.test>
To: Anna Rossi <anna@freelancer.test>
Subject: RE: Quote for the new website
Thread-Topic: Quote for the new website
Thread-Index: AQHapfX1c2Zk
Date: Tue, 14 May 2024 09:12:40 +0000
Message-ID: <PAXPR01MB5678.human@PAXPR01MB5678.eurprd01.prod.outlook.com>
In-Reply-To: <quote-42@freelancer.test>
X-MS-Has-Attach:
X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply
X-MS-Exchange-Organization-AuthAs: Internal
Content-Type: text/plain; charset="us-ascii"

"""
)

HUMAN_MENTIONS_OOO = crlf(
    """From: Marco Bianchi <marco@client.test>
To: anna@freelancer.test
Subject: Re: Timeline - note my out of office days in June

"""
)

READ_RECEIPT_MDN = crlf(
    """From: Marco Bianchi <marco@client.test>
To: anna@freelancer.test
Subject: Read: Quote for the new website
Date: Tue, 14 May 2024 12:00:00 +0200
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification;
\tboundary="mdn-boundary"

--mdn-boundary
Content-Type: text/plain; charset=utf-8

The message sent on 14/05/2024 to marco@client.test was displayed.

--mdn-boundary
Content-Type: message/disposition-notification

Reporting-UA: client.test; Thunderbird
Final-Recipient: rfc822;marco@client.test
Original-Message-ID: <quote-42@freelancer.test>
Disposition: manual-action/MDN-sent-manually; displayed

--mdn-boundary--
"""
)


def block(*lines: str) -> bytes:
    """A small header block from field lines."""
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


HUMAN_FROM = "From: Marco Bianchi <marco@client.test>"


# -- classify: one case per behaviour ------------------------------------------------

CASES: list[tuple[str, bytes, Kind, str | None]] = [
    # (id, header block, expected kind, a reason that must be given, or None)
    (
        "sieve_vacation_is_auto_reply_despite_precedence_bulk",
        DOVECOT_SIEVE_VACATION,
        Kind.AUTO_REPLY,
        "auto-submitted: auto-replied",
    ),
    (
        "postfix_dsn_is_bounce",
        POSTFIX_BOUNCE,
        Kind.BOUNCE,
        "content-type: multipart/report delivery-status",
    ),
    (
        "gmail_dsn_failure_is_bounce_not_auto_reply",
        GMAIL_DSN_FAILURE_HEADERS,
        Kind.BOUNCE,
        "x-failed-recipients present",
    ),
    (
        "exim_bounce_is_bounce",
        EXIM_BOUNCE,
        Kind.BOUNCE,
        "mailer return-path and subject: delivery failure (en)",
    ),
    (
        "exchange_automatic_reply_is_auto_reply",
        EXCHANGE_AUTOMATIC_REPLY,
        Kind.AUTO_REPLY,
        "subject: automatic reply (en)",
    ),
    (
        "exchange_inbox_rules_loop_alone_is_auto_reply",
        block(HUMAN_FROM, "X-MS-Exchange-Inbox-Rules-Loop: jane.doe@client.test"),
        Kind.AUTO_REPLY,
        "x-ms-exchange-inbox-rules-loop present",
    ),
    (
        "italian_risposta_automatica_encoded_word_is_auto_reply",
        ITALIAN_AUTOMATIC_REPLY,
        Kind.AUTO_REPLY,
        "subject: automatic reply (it)",
    ),
    (
        "german_abwesenheitsnotiz_is_auto_reply",
        GERMAN_ABWESENHEITSNOTIZ,
        Kind.AUTO_REPLY,
        "subject: out of office (de)",
    ),
    ("newsletter_with_list_unsubscribe_is_bulk", NEWSLETTER, Kind.BULK, "list-unsubscribe present"),
    ("plain_human_re_reply_is_human", HUMAN_REPLY, Kind.HUMAN, "no automation signal"),
    ("outlook_reply_with_x_auto_response_suppress_is_human", OUTLOOK_HUMAN_REPLY, Kind.HUMAN, None),
    ("out_of_office_mentioned_mid_subject_is_human", HUMAN_MENTIONS_OOO, Kind.HUMAN, None),
    (
        "read_receipt_mdn_is_auto_reply_not_answer",
        READ_RECEIPT_MDN,
        Kind.AUTO_REPLY,
        "content-type: read receipt (disposition-notification)",
    ),
    # Auto-reply header rules, one signal each.
    (
        "auto_submitted_auto_generated",
        block(HUMAN_FROM, "Auto-Submitted: auto-generated"),
        Kind.AUTO_REPLY,
        "auto-submitted: auto-generated",
    ),
    (
        "auto_submitted_auto_notified",
        block(HUMAN_FROM, "Auto-Submitted: auto-notified"),
        Kind.AUTO_REPLY,
        "auto-submitted: auto-notified",
    ),
    ("auto_submitted_no_is_human", block(HUMAN_FROM, "Auto-Submitted: no"), Kind.HUMAN, None),
    (
        "x_autoreply_yes",
        block(HUMAN_FROM, "X-Autoreply: yes"),
        Kind.AUTO_REPLY,
        "x-autoreply present",
    ),
    (
        "x_autorespond",
        block(HUMAN_FROM, "X-Autorespond: Out of office"),
        Kind.AUTO_REPLY,
        "x-autorespond present",
    ),
    (
        "x_autoresponse",
        block(HUMAN_FROM, "X-Autoresponse: true"),
        Kind.AUTO_REPLY,
        "x-autoresponse present",
    ),
    ("x_autoreply_no_is_human", block(HUMAN_FROM, "X-Autoreply: no"), Kind.HUMAN, None),
    (
        "exchange_mailbox_rules_agent",
        block(HUMAN_FROM, "X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent"),
        Kind.AUTO_REPLY,
        "x-ms-exchange-generated-message-source: mailbox rules agent",
    ),
    (
        "precedence_auto_reply",
        block(HUMAN_FROM, "Precedence: auto_reply"),
        Kind.AUTO_REPLY,
        "precedence: auto_reply",
    ),
    (
        "null_return_path_alone_is_auto_reply",
        block("Return-Path: <>", HUMAN_FROM, "Subject: Re: Quote"),
        Kind.AUTO_REPLY,
        "return-path: <> (null sender)",
    ),
    (
        "auto_submitted_beats_list_headers",
        block(HUMAN_FROM, "Auto-Submitted: auto-generated", "List-Id: <team.client.test>"),
        Kind.AUTO_REPLY,
        "auto-submitted: auto-generated",
    ),
    # Bounce rules, one signal each.
    (
        "x_failed_recipients_alone_is_bounce",
        block(HUMAN_FROM, "X-Failed-Recipients: gone@client.test"),
        Kind.BOUNCE,
        "x-failed-recipients present",
    ),
    (
        "postmaster_sender_is_bounce",
        block("From: Microsoft Outlook <postmaster@client.test>", "Subject: Undeliverable: Quote"),
        Kind.BOUNCE,
        "from: postmaster",
    ),
    (
        "mail_delivery_subsystem_display_name_is_bounce",
        block("From: Mail Delivery Subsystem <errors@relay.test>"),
        Kind.BOUNCE,
        "from: mail delivery subsystem",
    ),
    (
        "bare_mailer_daemon_without_domain_is_bounce",
        block("From: MAILER-DAEMON"),
        Kind.BOUNCE,
        "from: mailer-daemon",
    ),
    (
        "bounce_subject_without_null_sender_is_human",
        block(HUMAN_FROM, "Subject: Undelivered Mail Returned to Sender"),
        Kind.HUMAN,
        None,
    ),
    (
        "forwarded_bounce_from_a_person_is_human",
        block(HUMAN_FROM, "Subject: Fwd: Mail delivery failed: returning message to sender"),
        Kind.HUMAN,
        None,
    ),
    # Bulk rules, one signal each.
    (
        "list_id_is_bulk",
        block(HUMAN_FROM, "List-Id: Design talk <design.lists.test>"),
        Kind.BULK,
        "list-id present",
    ),
    (
        "list_post_is_bulk",
        block(HUMAN_FROM, "List-Post: <mailto:design@lists.test>"),
        Kind.BULK,
        "list-post present",
    ),
    (
        "precedence_bulk_is_bulk",
        block(HUMAN_FROM, "Precedence: bulk"),
        Kind.BULK,
        "precedence: bulk",
    ),
    (
        "precedence_junk_is_bulk",
        block(HUMAN_FROM, "Precedence: junk"),
        Kind.BULK,
        "precedence: junk",
    ),
    (
        "precedence_list_is_bulk",
        block(HUMAN_FROM, "Precedence: list"),
        Kind.BULK,
        "precedence: list",
    ),
    (
        "feedback_id_is_bulk",
        block(HUMAN_FROM, "Feedback-ID: 1.eu-west-1.abc:AmazonSES"),
        Kind.BULK,
        "feedback-id present",
    ),
    ("empty_list_id_is_ignored", block(HUMAN_FROM, "List-Id:"), Kind.HUMAN, None),
    (
        "tls_report_is_bulk",
        block("From: tlsrpt@mail.test", "Content-Type: multipart/report; report-type=tlsrpt"),
        Kind.BULK,
        "content-type: multipart/report tlsrpt",
    ),
    (
        "noreply_sender_via_sender_field_is_bulk",
        block(HUMAN_FROM, "Sender: no-reply@tools.test"),
        Kind.BULK,
        "sender: noreply address",
    ),
    # Subjects: the reply to an auto-reply is a person's answer.
    (
        "reply_to_an_automatic_reply_is_human",
        block(HUMAN_FROM, "Subject: Re: Automatic reply: Quote for the new website"),
        Kind.HUMAN,
        "subject: reply to an auto-reply",
    ),
    (
        "absent_mindedness_reply_is_human",
        block(HUMAN_FROM, "Subject: Re: Absent mindedness in the spec"),
        Kind.HUMAN,
        None,
    ),
    (
        "absent_mindedness_leading_is_human",
        block(HUMAN_FROM, "Subject: Absent mindedness in the spec"),
        Kind.HUMAN,
        None,
    ),
    (
        "out_of_office_party_is_human",
        block(HUMAN_FROM, "Subject: Out of office party on Friday?"),
        Kind.HUMAN,
        None,
    ),
    (
        "assente_domani_is_human",
        block(HUMAN_FROM, "Subject: Assente domani, ti chiamo"),
        Kind.HUMAN,
        None,
    ),
    # Robustness: readable garbage degrades to HUMAN, never to an exception.
    ("no_headers_at_all_is_human", b"\r\n", Kind.HUMAN, "no automation signal"),
    (
        "unknown_charset_encoded_word_is_human",
        block(HUMAN_FROM, "Subject: =?x-klingon?q?Qapla=E9?= Re: preventivo"),
        Kind.HUMAN,
        None,
    ),
    (
        "broken_base64_encoded_word_is_human",
        block(HUMAN_FROM, "Subject: =?utf-8?b?wwww?="),
        Kind.HUMAN,
        None,
    ),
    (
        "absurdly_long_subject_is_human",
        block(HUMAN_FROM, "Subject: Re: " + "x" * 1_000_000),
        Kind.HUMAN,
        None,
    ),
    (
        "duplicated_subject_uses_the_first",
        block(HUMAN_FROM, "Subject: Out of Office", "Subject: Re: quote"),
        Kind.AUTO_REPLY,
        "subject: out of office (en)",
    ),
]


@pytest.mark.parametrize(
    ("raw", "kind", "reason"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_classify(raw: bytes, kind: Kind, reason: str | None) -> None:
    """Each sample gets its kind, and the reason that pins the rule that decided it."""
    result = classify(headers(raw))
    assert result.kind is kind, result.reasons
    assert result.reasons, "every classification explains itself"
    if reason is not None:
        assert reason in result.reasons


OOO_SUBJECTS = [
    # (id, subject, reason)
    ("en_out_of_office", "Out of Office: Quote", "subject: out of office (en)"),
    ("en_out_of_office_until", "Out of office until Monday 20 May", "subject: out of office (en)"),
    ("en_automatic_reply", "Automatic reply: Quote", "subject: automatic reply (en)"),
    ("en_auto_reply_hyphen", "Auto-Reply: Quote", "subject: auto-reply (en)"),
    ("en_autoreply", "AUTOREPLY", "subject: auto-reply (en)"),
    (
        "en_away_from_the_office",
        "Away from the office - back 3 June",
        "subject: away from the office (en)",
    ),
    ("en_on_vacation", "On vacation!", "subject: on vacation (en)"),
    ("en_tagged_subject", "[EXTERNAL] Out of Office: Quote", "subject: out of office (en)"),
    ("it_fuori_sede", "Fuori sede fino al 20/05", "subject: out of office (it)"),
    ("it_fuori_ufficio", "Fuori ufficio", "subject: out of office (it)"),
    (
        "it_risposta_automatica",
        "Risposta automatica: R: preventivo",
        "subject: automatic reply (it)",
    ),
    ("it_assente", "Assente dal 10 al 20 maggio", "subject: absent (it)"),
    ("it_in_ferie", "In ferie", "subject: on vacation (it)"),
    ("de_abwesenheitsnotiz", "Abwesenheitsnotiz: Angebot", "subject: out of office (de)"),
    (
        "de_automatische_antwort",
        "Automatische Antwort: AW: Angebot",
        "subject: automatic reply (de)",
    ),
    ("de_abwesend", "Abwesend bis 10.06.", "subject: absent (de)"),
    ("fr_absence_du_bureau", "Absence du bureau", "subject: out of office (fr)"),
    (
        "fr_reponse_automatique_space_colon",
        "Réponse automatique : devis",
        "subject: automatic reply (fr)",
    ),
    ("fr_absent", "Absent jusqu'au 3 juin", "subject: absent (fr)"),
    ("es_fuera_de_la_oficina", "Fuera de la oficina", "subject: out of office (es)"),
    (
        "es_respuesta_automatica",
        "Respuesta automática: presupuesto",
        "subject: automatic reply (es)",
    ),
    ("nl_afwezig", "Afwezig tot 12 mei", "subject: absent (nl)"),
    ("nl_automatisch_antwoord", "Automatisch antwoord: offerte", "subject: automatic reply (nl)"),
]


@pytest.mark.parametrize(
    ("subject", "reason"),
    [case[1:] for case in OOO_SUBJECTS],
    ids=[case[0] for case in OOO_SUBJECTS],
)
def test_out_of_office_subjects(subject: str, reason: str) -> None:
    """A localized out-of-office phrase opening the subject marks an auto-reply."""
    result = classify(headers(block(HUMAN_FROM, f"Subject: {subject}")))
    assert result == Classification(Kind.AUTO_REPLY, (reason,))


def test_raw_8bit_utf8_subject_is_decoded() -> None:
    """Undeclared UTF-8 bytes in Subject (no encoded words) still match the phrase."""
    raw = b"From: a@client.test\r\nSubject: R\xc3\xa9ponse automatique\r\n\r\n"
    assert classify(headers(raw)).kind is Kind.AUTO_REPLY


def test_raw_8bit_latin1_subject_is_decoded() -> None:
    """Undeclared Latin-1 bytes in Subject fall back to Windows-1252 and still match."""
    raw = b"From: a@client.test\r\nSubject: Respuesta autom\xe1tica\r\n\r\n"
    assert classify(headers(raw)).kind is Kind.AUTO_REPLY


BOUNCE_SUBJECTS = [
    ("en_postfix", "Undelivered Mail Returned to Sender"),
    ("en_gmail", "Delivery Status Notification (Failure)"),
    ("en_exim", "Mail delivery failed: returning message to sender"),
    ("en_exchange", "Undeliverable: Quote"),
    ("en_sendmail", "Returned mail: see transcript for details"),
    ("en_qmail", "failure notice"),
    ("it_mancato_recapito", "Mancato recapito: preventivo"),
    ("it_impossibile_recapitare", "Impossibile recapitare il messaggio"),
    ("it_exchange", "Non recapitabile: preventivo"),
    ("de_unzustellbar", "Unzustellbar: Angebot"),
    ("fr_non_remis", "Non remis : devis"),
    ("fr_echec_de_la_remise", "Échec de la remise du message"),
]


@pytest.mark.parametrize(
    "subject", [case[1] for case in BOUNCE_SUBJECTS], ids=[case[0] for case in BOUNCE_SUBJECTS]
)
def test_null_return_path_with_failure_subject_is_bounce(subject: str) -> None:
    """A null Return-Path plus a delivery-failure subject is a bounce, in any language."""
    result = classify(
        headers(block("Return-Path: <>", "From: relay@isp.test", f"Subject: {subject}"))
    )
    assert result.kind is Kind.BOUNCE, result.reasons
    assert any(r.startswith("mailer return-path and subject:") for r in result.reasons)


BULK_SENDERS = [
    ("noreply", "noreply@shop.test", Kind.BULK),
    ("no_reply", "no-reply@shop.test", Kind.BULK),
    ("no_reply_suffixed", "no-reply.billing@shop.test", Kind.BULK),
    ("donotreply", "donotreply@bank.test", Kind.BULK),
    ("do_not_reply", "do-not-reply@bank.test", Kind.BULK),
    ("notifications", "notifications@github.test", Kind.BULK),
    ("newsletter", "newsletter@magazine.test", Kind.BULK),
    ("mailer", "mailer@service.test", Kind.BULK),
    ("verp_bounces", "bounces+1234-abcd=freelancer.test@mail.test", Kind.BULK),
    ("bounce_prefix", "bounce-42@mail.test", Kind.BULK),
    ("noreen_is_a_person", "noreen@client.test", Kind.HUMAN),
    ("mailerman_is_a_person", "mailerman@client.test", Kind.HUMAN),
]


@pytest.mark.parametrize(
    ("address", "kind"), [case[1:] for case in BULK_SENDERS], ids=[case[0] for case in BULK_SENDERS]
)
def test_noreply_style_senders(address: str, kind: Kind) -> None:
    """Machine mailbox names in From make bulk; names that merely start alike do not."""
    assert classify(headers(block(f"From: Someone <{address}>"))).kind is kind


@pytest.mark.parametrize(
    ("kind", "automated"),
    [(Kind.HUMAN, False), (Kind.AUTO_REPLY, True), (Kind.BOUNCE, True), (Kind.BULK, True)],
    ids=["human", "auto_reply", "bounce", "bulk"],
)
def test_automated_is_everything_but_human(kind: Kind, automated: bool) -> None:
    """`automated` is true for every kind a person did not write."""
    assert Classification(kind, ()).automated is automated


def test_header_fields_cover_every_field_the_rules_read() -> None:
    """HEADER_FIELDS names each field a rule reads, once, and leaves out the ignored one."""
    lowered = [name.lower() for name in HEADER_FIELDS]
    assert len(lowered) == len(set(lowered))
    for needed in ("auto-submitted", "return-path", "content-type", "list-id", "feedback-id"):
        assert needed in lowered
    assert "x-auto-response-suppress" not in lowered


def test_classify_never_raises_on_a_broken_message_object() -> None:
    """A headers object that blows up on access degrades to HUMAN with a reason."""

    class Exploding(Message):
        def get_all(self, *args: object, **kwargs: object) -> list[str]:
            raise RuntimeError("boom")

    result = classify(Exploding())
    assert result.kind is Kind.HUMAN
    assert result.reasons[0].startswith("unparseable")


# -- parse_bounce ----------------------------------------------------------------------

BOUNCES = [
    (
        "postfix_dsn_with_message_rfc822",
        POSTFIX_BOUNCE,
        BounceReport(frozenset({"nobody@client.test"}), frozenset(), "<quote-42@freelancer.test>"),
    ),
    (
        "postfix_dsn_with_text_rfc822_headers",
        POSTFIX_BOUNCE_HEADERS_ONLY,
        BounceReport(frozenset({"nobody@client.test"}), frozenset(), "<quote-42@freelancer.test>"),
    ),
    (
        "gmail_delay_is_temporary",
        GMAIL_DSN_DELAY,
        BounceReport(frozenset(), frozenset({"slow@client.test"}), "<invoice-7@freelancer.test>"),
    ),
    (
        "exim_plain_text_with_quoted_folded_header",
        EXIM_BOUNCE,
        BounceReport(frozenset({"gone@client.test"}), frozenset(), "<followup-3@freelancer.test>"),
    ),
    (
        "headers_say_bounce_but_body_is_empty",
        block("From: MAILER-DAEMON@mx.test", "Subject: Undelivered Mail Returned to Sender"),
        BounceReport(frozenset(), frozenset(), None),
    ),
]


@pytest.mark.parametrize(
    ("raw", "expected"), [case[1:] for case in BOUNCES], ids=[case[0] for case in BOUNCES]
)
def test_parse_bounce(raw: bytes, expected: BounceReport) -> None:
    """Failed recipients split by permanence, plus the Message-ID that bounced."""
    assert parse_bounce(raw) == expected


def test_parse_bounce_brackets_a_bare_original_message_id() -> None:
    """An original Message-ID written without angle brackets comes back as "<...>"."""
    raw = POSTFIX_BOUNCE.replace(
        b"Message-ID: <quote-42@freelancer.test>", b"Message-ID: quote-42@freelancer.test"
    )
    report = parse_bounce(raw)
    assert report is not None
    assert report.original_message_id == "<quote-42@freelancer.test>"


QMAIL_BOUNCE_WITHOUT_FROM = crlf(
    """Return-Path: <>
To: anna@freelancer.test
Subject: failure notice
Date: 14 May 2024 08:02:13 -0000

Hi. This is the qmail-send program at mx.client.test.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<gone@client.test>:
192.0.2.25 does not like recipient.
Remote host said: 550 5.1.1 <gone@client.test>... User unknown
Giving up on 192.0.2.25.

--- Below this line is a copy of the message.

Return-Path: <anna@freelancer.test>
Message-ID: <q-1@freelancer.test>
From: Anna <anna@freelancer.test>
To: gone@client.test
Subject: Quote

Hello.
"""
)


def test_parse_bounce_survives_a_bounce_without_from() -> None:
    """A From-less bounce still reaches flufl's later detectors (its Yale one trips on it)."""
    assert parse_bounce(QMAIL_BOUNCE_WITHOUT_FROM) == BounceReport(
        frozenset({"gone@client.test"}), frozenset(), "<q-1@freelancer.test>"
    )


def test_parse_bounce_lowercases_addresses() -> None:
    """Addresses come back lowercased whatever case the MTA used."""
    raw = POSTFIX_BOUNCE.replace(
        b"Final-Recipient: rfc822; nobody@", b"Final-Recipient: rfc822; NoBody@"
    )
    raw = raw.replace(b"Original-Recipient: rfc822;nobody@", b"Original-Recipient: rfc822;NoBody@")
    report = parse_bounce(raw)
    assert report is not None
    assert report.permanent == frozenset({"nobody@client.test"})


NOT_BOUNCES = [
    ("human_reply", HUMAN_REPLY + b"Sounds good, let's start on Monday.\r\n"),
    ("read_receipt", READ_RECEIPT_MDN),
    ("vacation_reply", DOVECOT_SIEVE_VACATION + b"I am away until 20 May.\r\n"),
    ("empty_bytes", b""),
    ("binary_noise", bytes(range(256)) * 4),
]


@pytest.mark.parametrize(
    "raw", [case[1] for case in NOT_BOUNCES], ids=[case[0] for case in NOT_BOUNCES]
)
def test_parse_bounce_returns_none_for_non_bounces(raw: bytes) -> None:
    """Mail that neither the headers nor flufl.bounce call a bounce yields None."""
    assert parse_bounce(raw) is None


# -- properties ------------------------------------------------------------------------

_FIELD_NAMES = st.sampled_from([*HEADER_FIELDS, "X-Random", "Received", "content-type"])
_CHARSETS = st.sampled_from(["utf-8", "iso-8859-1", "x-bogus", "unknown-8bit", "utf-16", ""])
_ENCODED_WORD = st.builds(
    lambda charset, enc, text: f"=?{charset}?{enc}?{text}?=".encode("latin-1", "replace"),
    _CHARSETS,
    st.sampled_from(["q", "b", "Q", "B", "x"]),
    st.text(alphabet="ABCxyz=+/_0123456789-\u00e9", max_size=30),
)
_VALUE = st.one_of(
    st.binary(max_size=200),
    _ENCODED_WORD,
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"<>", b"multipart/report; report-type=delivery-status", b"auto-replied"]),
)
_HEADER_LINE = st.builds(lambda name, value: name.encode() + b": " + value, _FIELD_NAMES, _VALUE)
_HEADER_BLOCK = st.lists(_HEADER_LINE, max_size=20).map(
    lambda lines: b"\r\n".join(lines) + b"\r\n\r\n"
)


def _assert_classification(result: Classification) -> None:
    assert isinstance(result.kind, Kind)
    assert result.reasons
    assert all(isinstance(reason, str) for reason in result.reasons)


@PROPERTY
@given(st.binary(max_size=2000))
def test_classify_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    """Any byte soup parsed as a header block classifies without raising."""
    _assert_classification(classify(headers(raw)))


@PROPERTY
@given(_HEADER_BLOCK)
def test_classify_never_raises_on_random_header_lines(raw: bytes) -> None:
    """Known fields with hostile values (8-bit, bad encoded words) never raise."""
    _assert_classification(classify(headers(raw)))


@PROPERTY
@given(st.binary(max_size=4000))
def test_parse_bounce_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    """parse_bounce on any bytes returns a report or None, never an exception."""
    result = parse_bounce(raw)
    assert result is None or isinstance(result, BounceReport)


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    b"message/delivery-status",
                    b"message/rfc822",
                    b"text/rfc822-headers",
                    b"text/plain",
                    b"multipart/mixed",
                    b"message/disposition-notification",
                ]
            ),
            st.sampled_from(
                [
                    b"",
                    b"Content-Transfer-Encoding: base64\r\n",
                    b"Content-Transfer-Encoding: quoted-printable\r\n",
                ]
            ),
            st.binary(max_size=300),
        ),
        max_size=4,
    )
)
def test_parse_bounce_never_raises_on_random_reports(
    parts: list[tuple[bytes, bytes, bytes]],
) -> None:
    """A multipart/report shell around random parts never makes parse_bounce raise."""
    body = b"".join(
        b"--b\r\nContent-Type: " + ctype + b"\r\n" + extra + b"\r\n" + payload + b"\r\n"
        for ctype, extra, payload in parts
    )
    raw = (
        b"From: MAILER-DAEMON@mx.test\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        + body
        + b"--b--\r\n"
    )
    result = parse_bounce(raw)
    assert result is None or isinstance(result, BounceReport)
