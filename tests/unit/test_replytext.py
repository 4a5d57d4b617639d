"""The user's own text in a reply to the digest, and whether a reply was automatic.

Samples are written as the clients send them (header layout, attribution lines,
quoting, signatures) and parsed from bytes with the default policy, as the daemon
will. The quoted digest always carries commands of its own ("stop 9", "paid 8"), so a
test fails if any quoted line leaks into the result.
"""

from __future__ import annotations

from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from ghostwatch.replycommands import parse
from ghostwatch.replytext import is_automated, own_text

HEADERS = """\
From: Mario Rossi <mario@rossi.example>
To: ghostwatch <ghostwatch@rossi.example>
Subject: Re: ghostwatch: 3 drafts are waiting
Date: Mon, 30 Nov 2026 09:40:00 +0100
Message-ID: <reply-1@rossi.example>
In-Reply-To: <digest-2026-11-30@rossi.example>
MIME-Version: 1.0
"""

DIGEST_LINES = [
    "3 drafts are waiting.",
    "",
    "1. Bob (Acme) - second follow-up",
    "2. Carol (Initech) - invoice 2026-014",
    "",
    "Example: stop 9",
    "paid 8",
]
QUOTED_DIGEST = "\n".join(f"> {line}".rstrip() for line in DIGEST_LINES)


def mail(head: str, body: str) -> EmailMessage:
    """Parse a whole message written with \\n line ends, as received (CRLF)."""
    raw = (HEADERS + head + "\n" + body).replace("\n", "\r\n").encode("utf-8")
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


PLAIN = "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n"


def html_only(markup: str) -> EmailMessage:
    """An HTML-only message, quoted-printable like Outlook's, round-tripped via bytes."""
    msg = EmailMessage()
    msg["From"] = "Mario Rossi <mario@rossi.example>"
    msg["Subject"] = "RE: ghostwatch: 3 drafts are waiting"
    msg.set_content(markup, subtype="html", cte="quoted-printable")
    parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# -- Gmail ---------------------------------------------------------------------------


def test_gmail_top_post_keeps_only_the_lines_above_the_attribution() -> None:
    msg = mail(
        'Content-Type: multipart/alternative; boundary="000000000000a1b2c3"\n',
        "--000000000000a1b2c3\n"
        'Content-Type: text/plain; charset="UTF-8"\n'
        "\n"
        "send 1 3\n"
        "skip 2\n"
        "\n"
        "On Mon, 30 Nov 2026 at 09:12, Alice <a@x.example> wrote:\n"
        "\n"
        f"{QUOTED_DIGEST}\n"
        "\n"
        "--000000000000a1b2c3\n"
        'Content-Type: text/html; charset="UTF-8"\n'
        "\n"
        '<div dir="ltr">HTML is not read when text/plain exists</div>\n'
        "\n"
        "--000000000000a1b2c3--\n",
    )
    assert own_text(msg) == "send 1 3\nskip 2"


def test_gmail_attribution_wrapped_over_two_lines_is_still_cut() -> None:
    """Gmail hard-wraps a long attribution inside the address."""
    body = (
        "paid 2\n\n"
        "On Mon, 30 Nov 2026 at 09:12, Alice Wonderland-Longname <\n"
        "alice.wonderland@example.com> wrote:\n\n"
        f"{QUOTED_DIGEST}\n"
    )
    assert own_text(mail(PLAIN, body)) == "paid 2"


def test_italian_gmail_attribution_is_cut() -> None:
    body = (
        "invia 1\n"
        "rimanda 2 3g\n"
        "\n"
        "Il giorno lun 30 nov 2026 alle ore 09:12 Alice <a@x.example> ha scritto:\n"
        "\n"
        f"{QUOTED_DIGEST}\n"
    )
    assert own_text(mail(PLAIN, body)) == "invia 1\nrimanda 2 3g"


def test_gmail_html_alternative_is_used_when_text_plain_is_empty() -> None:
    msg = mail(
        'Content-Type: multipart/alternative; boundary="b1"\n',
        "--b1\n"
        'Content-Type: text/plain; charset="UTF-8"\n'
        "\n"
        "\n"
        "--b1\n"
        'Content-Type: text/html; charset="UTF-8"\n'
        "\n"
        '<div dir="ltr"><div>send 2</div></div><br><div class="gmail_quote">'
        '<div dir="ltr" class="gmail_attr">On Mon, 30 Nov 2026 at 09:12, Alice &lt;'
        '<a href="mailto:a@x.example">a@x.example</a>&gt; wrote:<br></div>'
        '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;'
        'border-left:1px solid rgb(204,204,204);padding-left:1ex">'
        "<div>Example: stop 9</div></blockquote></div>\n"
        "--b1--\n",
    )
    assert own_text(msg) == "send 2"


# -- Outlook -------------------------------------------------------------------------


def test_outlook_original_message_separator_is_cut() -> None:
    body = (
        "send all\n"
        "\n"
        "-----Original Message-----\n"
        "From: ghostwatch <ghostwatch@rossi.example>\n"
        "Sent: Monday, November 30, 2026 9:12 AM\n"
        "To: Mario Rossi <mario@rossi.example>\n"
        "Subject: ghostwatch: 3 drafts are waiting\n"
        "\n" + "\n".join(DIGEST_LINES) + "\n"
    )
    assert own_text(mail(PLAIN, body)) == "send all"


def test_outlook_365_header_block_under_an_underscore_rule_is_cut() -> None:
    """Outlook quotes without ">": everything from the From/Sent block down is old."""
    body = (
        "skip 1\n"
        "stop 2\n"
        "\n"
        "________________________________\n"
        "From: ghostwatch <ghostwatch@rossi.example>\n"
        "Sent: Monday, November 30, 2026 9:12 AM\n"
        "To: Mario Rossi <mario@rossi.example>\n"
        "Subject: ghostwatch: 3 drafts are waiting\n"
        "\n" + "\n".join(DIGEST_LINES) + "\n"
    )
    assert own_text(mail(PLAIN, body)) == "skip 1\nstop 2"


def test_italian_outlook_header_block_is_cut() -> None:
    body = (
        "pagato 2\n"
        "\n"
        "Da: ghostwatch <ghostwatch@rossi.example>\n"
        "Inviato: lunedì 30 novembre 2026 09:12\n"
        "A: Mario Rossi <mario@rossi.example>\n"
        "Oggetto: ghostwatch: 3 bozze in attesa\n"
        "\n" + "\n".join(DIGEST_LINES) + "\n"
    )
    assert own_text(mail(PLAIN, body)) == "pagato 2"


OUTLOOK_HTML = """\
<html xmlns:o="urn:schemas-microsoft-com:office:office">
<head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<style><!-- p.MsoNormal {margin:0cm; font-size:11.0pt;} --></style></head>
<body lang="IT" link="#0563C1"><div class="WordSection1">
<p class="MsoNormal">send 1<o:p></o:p></p>
<p class="MsoNormal">snooze 3 until 10 dec<o:p></o:p></p>
<p class="MsoNormal"><o:p>&nbsp;</o:p></p>
<div><div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">
<p class="MsoNormal"><b>From:</b> ghostwatch &lt;ghostwatch@rossi.example&gt; <br>
<b>Sent:</b> Monday, November 30, 2026 9:12 AM<br>
<b>To:</b> Mario Rossi &lt;mario@rossi.example&gt;<br>
<b>Subject:</b> ghostwatch: 3 drafts are waiting<o:p></o:p></p></div></div>
<p class="MsoNormal"><o:p>&nbsp;</o:p></p>
<p class="MsoNormal">Example: stop 9<o:p></o:p></p>
<p class="MsoNormal">paid 8<o:p></o:p></p>
</div></body></html>
"""


def test_outlook_html_only_reply_is_converted_and_cut_at_the_header_block() -> None:
    assert own_text(html_only(OUTLOOK_HTML)) == "send 1\nsnooze 3 until 10 dec"


def test_html_blockquote_is_dropped_even_when_its_header_is_not_recognised() -> None:
    """A Dutch attribution is not configured; the <blockquote> still marks the quote."""
    markup = (
        "<div>send 2</div>"
        '<blockquote type="cite"><div>Op 30 nov 2026 om 09:12 heeft Alice het volgende '
        "geschreven:</div><div>Example: stop 9</div></blockquote>"
    )
    assert own_text(html_only(markup)) == "send 2"


# -- Apple Mail ----------------------------------------------------------------------


def test_ios_mail_quoted_attribution_and_sent_from_my_iphone_are_cut() -> None:
    """iOS Mail puts the tagline above the quote and ">"-quotes the attribution too."""
    body = (
        "send 1\n"
        "\n"
        "Sent from my iPhone\n"
        "\n"
        "> On 30 Nov 2026, at 09:12, Alice <a@x.example> wrote:\n"
        ">\n"
        f"{QUOTED_DIGEST}\n"
    )
    assert own_text(mail(PLAIN, body)) == "send 1"


def test_macos_mail_attribution_is_cut() -> None:
    body = (
        f"skip 3\n\n> On 30 Nov 2026, at 09:12, Alice <a@x.example> wrote:\n> \n{QUOTED_DIGEST}\n"
    )
    msg = mail(
        "Content-Type: text/plain;\n\tcharset=utf-8\nContent-Transfer-Encoding: quoted-printable\n",
        body.replace("=", "=3D"),
    )
    assert own_text(msg) == "skip 3"


def test_inviato_da_iphone_is_cut() -> None:
    body = "salta 1\n\nInviato da iPhone\n\n> Il giorno 30 nov 2026, alle ore 09:12, Alice <a@x.example> ha scritto:\n>\n"
    assert own_text(mail(PLAIN, body + QUOTED_DIGEST + "\n")) == "salta 1"


# -- signatures ------------------------------------------------------------------------


def test_dash_dash_space_signature_is_cut() -> None:
    """RFC 3676 §4.3: "-- " alone on a line starts the signature."""
    body = (
        "send 1\n"
        "paid 2\n"
        "-- \n"
        "Mario Rossi\n"
        "Rossi Design srl - P.IVA 01234567890\n"
        "\n"
        "On Mon, 30 Nov 2026 at 09:12, Alice <a@x.example> wrote:\n"
        f"{QUOTED_DIGEST}\n"
    )
    assert own_text(mail(PLAIN, body)) == "send 1\npaid 2"


def test_sign_off_phrases_and_hyphen_lists_are_kept_for_edit_texts() -> None:
    """Unlike mail-parser-reply's default, "Kind regards," and "- item" cut nothing."""
    body = (
        "edit 1\n"
        "Hi Bob,\n"
        "- the logo files\n"
        "- the invoice\n"
        "Kind regards,\n"
        "Mario\n"
        "end\n"
        "send 2\n"
        "\n"
        "Thanks,\n"
        "Mario\n"
        "\n"
        "On Mon, 30 Nov 2026 at 09:12, Alice <a@x.example> wrote:\n"
        f"{QUOTED_DIGEST}\n"
    )
    assert own_text(mail(PLAIN, body)) == (
        "edit 1\nHi Bob,\n- the logo files\n- the invoice\nKind regards,\nMario\nend\n"
        "send 2\n\nThanks,\nMario"
    )


# -- quotes without a header, bottom-posting, nothing written ------------------------------


def test_quoted_lines_without_a_header_are_dropped_and_inline_answers_kept() -> None:
    body = "> 1. Bob (Acme) - second follow-up\nsend 1\n> 2. Carol\n> Example: stop 9\nskip 2\n"
    assert own_text(mail(PLAIN, body)) == "send 1\nskip 2"


def test_bottom_posted_reply_keeps_the_text_below_the_quote() -> None:
    body = f"On 30/11/2026 09:12, Alice wrote:\n{QUOTED_DIGEST}\n\nsend 1\n-- \nMario\n"
    assert own_text(mail(PLAIN, body)) == "send 1"


def test_reply_with_only_the_quote_gives_empty_text_not_the_quote() -> None:
    """mail-parser-reply skips an empty first part and would hand back the quote."""
    body = f"On Mon, 30 Nov 2026 at 09:12, Alice <a@x.example> wrote:\n\n{QUOTED_DIGEST}\n"
    assert own_text(mail(PLAIN, body)) == ""


def test_outlook_reply_with_nothing_above_the_header_block_gives_empty_text() -> None:
    body = (
        "From: ghostwatch <ghostwatch@rossi.example>\n"
        "Sent: Monday, November 30, 2026 9:12 AM\n"
        "To: Mario Rossi <mario@rossi.example>\n"
        "Subject: ghostwatch: 3 drafts are waiting\n"
        "\n" + "\n".join(DIGEST_LINES) + "\n"
    )
    assert own_text(mail(PLAIN, body)) == ""


# -- decoding ----------------------------------------------------------------------------


def test_format_flowed_lines_are_joined_before_cutting() -> None:
    """RFC 3676 §4.2: Thunderbird soft-wraps with a trailing space; DelSp=yes drops it."""
    body = (
        "edit 2\n"
        "Hi Carol, a friendly reminder that invoice 2026-014 is now two weeks  \n"
        "past due.\n"
        "end\n"
        "\n"
        "On 30/11/2026 09:12, Alice wrote:\n"
        "> Example: stop 9 and a long quoted line that the client has \n"
        "> wrapped.\n"
    )
    msg = mail(
        "Content-Type: text/plain; charset=UTF-8; format=flowed; delsp=yes\n"
        "Content-Transfer-Encoding: 8bit\n",
        body,
    )
    assert own_text(msg) == (
        "edit 2\nHi Carol, a friendly reminder that invoice 2026-014 is now two weeks "
        "past due.\nend"
    )


def test_unknown_charset_falls_back_to_utf8() -> None:
    msg = mail(
        "Content-Type: text/plain; charset=x-no-such-charset\n",
        "invia 1 perché è pronta\n",
    )
    assert own_text(msg) == "invia 1 perché è pronta"


def test_message_parsed_with_compat32_is_read_too() -> None:
    """The IMAP code parses with compat32, whose policy has no content manager."""
    body = f"send 1\n\nOn Mon, 30 Nov 2026 at 09:12, Alice <a@x.example> wrote:\n{QUOTED_DIGEST}\n"
    raw = (HEADERS + PLAIN + "\n" + body).replace("\n", "\r\n").encode("utf-8")
    msg = message_from_bytes(raw, _class=EmailMessage, policy=policy.compat32)
    assert isinstance(msg, EmailMessage)
    assert own_text(msg) == "send 1"


def test_message_without_a_text_part_gives_empty_text() -> None:
    msg = mail(
        "Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n",
        "JVBERi0xLjQK\n",
    )
    assert own_text(msg) == ""


def test_only_top_commands_reach_the_parser() -> None:
    """End to end: the commands of the quoted digest are never parsed."""
    body = f"send 1\n\nOn Mon, 30 Nov 2026 at 09:12, Alice <a@x.example> wrote:\n{QUOTED_DIGEST}\n"
    parsed = parse(own_text(mail(PLAIN, body)), today=date(2026, 11, 30))
    assert [(c.verb, c.items) for c in parsed.commands] == [("send", (1,))]
    assert parsed.not_understood == ()


# -- is_automated ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("Auto-Submitted", "auto-replied (vacation)", "auto-submitted: auto-replied"),
        ("Auto-Submitted", "auto-generated", "auto-submitted: auto-generated"),
        ("X-Autoreply", "yes", "x-autoreply present"),
        ("X-Autorespond", "Out of office", "x-autorespond present"),
        ("Precedence", "auto_reply", "precedence: auto_reply"),
        ("Precedence", "bulk", "precedence: bulk"),
        ("Precedence", "junk", "precedence: junk"),
        ("Precedence", "list", "precedence: list"),
    ],
)
def test_automatic_replies_are_recognised(field: str, value: str, reason: str) -> None:
    msg = mail(f"{field}: {value}\n" + PLAIN, "send 1\n")
    found = is_automated(msg)
    assert found is not None
    assert reason in found


def test_auto_submitted_no_is_a_person() -> None:
    """RFC 3834 §5: "no" is the one value that does not mark an automatic message."""
    assert is_automated(mail("Auto-Submitted: no\n" + PLAIN, "send 1\n")) is None


def test_x_auto_response_suppress_does_not_make_a_reply_automatic() -> None:
    """Exchange stamps it on mail people write; reading it would drop Outlook users' commands."""
    msg = mail("X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply\n" + PLAIN, "send 1\n")
    assert is_automated(msg) is None
