"""The user's own new text in a reply to the digest, without quotes or signature.

`own_text` reads the text/plain part (or the HTML one, converted with inscriptis, when
that is all there is) and keeps what the user wrote above the quoted digest:

* Reply headers are found by mail-parser-reply, configured for en, it, de, fr and es:
  "On ... wrote:" (Gmail, Apple Mail, Thunderbird), "Il giorno ... ha scritto:",
  "-----Original Message-----" and the "From:/Sent:/To:" or "Da:/Inviato:/A:" block of
  Outlook, also when the header itself is ">"-quoted (iOS Mail). Everything from the
  first header on is the quoted digest.
* Signatures are cut at the RFC 3676 §4.3 separator line "-- ", at Outlook's underscore
  rule and at device taglines ("Sent from my iPhone", "Inviato da iPhone", ...).
  Sign-off phrases ("Thanks,", "Cordiali saluti") are deliberately kept, unlike the
  library's default: they are also how the replacement text of an ``edit`` command
  ends, and cutting there would drop the rest of the draft and every command below it.
* Fallbacks for what the library leaves in (each one marked "Fallback" below):
  ">"-quoted lines without a header are dropped; a reply that starts with the quote
  (bottom-posting, inline answers) keeps the unquoted lines written below it.

`is_automated` says whether a reply was sent by a machine; it reuses
`ghostwatch.classify.classify`. Both functions are pure and never raise.
"""

from __future__ import annotations

import re
from contextlib import suppress
from email.contentmanager import raw_data_manager
from email.message import EmailMessage, Message, MIMEPart
from functools import cache
from typing import Any

# mail-parser-reply ships no py.typed marker.
from mailparser_reply.constants import (  # type: ignore[import-untyped]
    MAIL_LANGUAGES,
    NOLIST_SIGNATURE_REGEX,
    OUTLOOK_MAIL_SEPARATOR,
    QUOTED_MATCH_INCLUDE,
)
from mailparser_reply.parser import EmailMessage as ParsedText  # type: ignore[import-untyped]

from ghostwatch.classify import classify

__all__ = ["LANGUAGES", "is_automated", "own_text"]

#: Languages whose reply headers and taglines are recognised.
LANGUAGES: tuple[str, ...] = ("en", "it", "de", "fr", "es")

# A reply with commands is a few lines; the cap keeps the library's regexes cheap on a
# long quoted thread. What the user wrote comes first, so the cut only loses quotes.
_MAX_CHARS = 200_000

_QUOTED_LINE = re.compile(r"^[ \t]*>")


def own_text(msg: EmailMessage) -> str:
    """What the user wrote in ``msg``, without quoted text or signature; "" if nothing."""
    try:
        return _own_text(_body_text(msg)[:_MAX_CHARS])
    except Exception:
        # Never raise on mail: an unreadable reply holds no command, and the caller
        # answers "nothing understood" instead of crashing the daemon.
        return ""


def is_automated(msg: Message) -> str | None:
    """Why ``msg`` was sent by a machine ("; "-joined reasons), or None for a person.

    A thin wrapper over `ghostwatch.classify.classify`, which already reads RFC 3834
    §5 Auto-Submitted (any value but "no"), X-Autoreply, X-Autorespond and Precedence
    auto_reply/bulk/junk/list, plus bounces, read receipts and list mail. It does not
    read X-Auto-Response-Suppress on purpose: that field is a request (MS-OXCMAIL
    2.1.3.2.20) that Outlook stamps on mail people write, so honouring it here would
    ignore the commands of every user who replies from Outlook.
    """
    result = classify(msg)
    return "; ".join(result.reasons) if result.automated else None


# -- choosing and decoding the body ------------------------------------------------------


def _body_text(msg: EmailMessage) -> str:
    """The text/plain body, else the HTML body as text; "" when there is neither."""
    plain = msg.get_body(preferencelist=("plain",))
    if plain is not None:
        text = _decoded(plain)
        if _param(plain, "format").lower() == "flowed":
            text = _unflow(text, delsp=_param(plain, "delsp").lower() == "yes")
        # Some clients send an empty text/plain next to the real HTML body.
        if text.strip():
            return text
    html = msg.get_body(preferencelist=("html",))
    return _html_to_text(_decoded(html)) if html is not None else ""


def _decoded(part: MIMEPart) -> str:
    """A text part's content; an unknown charset falls back to UTF-8."""
    # raw_data_manager is named because a message parsed with policy=compat32 has no
    # content manager of its own. LookupError (unknown charset) and broken transfer
    # encodings land in the fallback.
    with suppress(Exception):
        content = part.get_content(content_manager=raw_data_manager)
        if isinstance(content, str):
            return content
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def _param(part: Message, name: str) -> str:
    value = part.get_param(name, "")
    return value if isinstance(value, str) else ""


def _unflow(text: str, *, delsp: bool) -> str:
    """Undo RFC 3676 format=flowed, which Apple Mail and Thunderbird send.

    A line ending in a space continues on the next line at the same quote depth (§4.2),
    the leading space of a stuffed line goes (§4.4), and with DelSp=yes the trailing
    space is the sender's, not the text's (§4.2). "-- " is never flowed (§4.3). Without
    this, an ``edit`` text would reach the client hard-wrapped at ~72 columns.
    """
    out: list[str] = []
    paragraph: list[str] = []
    depth = 0

    def flush() -> None:
        if paragraph:
            out.append(("> " * depth) + "".join(paragraph))
            paragraph.clear()

    for raw in text.replace("\r\n", "\n").split("\n"):
        quotes = len(raw) - len(raw.lstrip(">"))
        line = raw[quotes:]
        line = line.removeprefix(" ")
        if paragraph and quotes != depth:  # §4.5: a changed depth ends the paragraph
            flush()
        depth = quotes
        soft = line.endswith(" ") and line != "-- "
        paragraph.append(line[:-1] if soft and delsp else line)
        if not soft:
            flush()
    flush()
    return "\n".join(out)


@cache
def _html_config() -> Any:  # inscriptis' ParserConfig; untyped upstream
    """inscriptis' strict (Firefox-like) profile, with two mail-specific changes.

    <blockquote> is hidden: Gmail, Apple Mail and Thunderbird put the quoted message in
    one, so the quote goes whatever language its header is in. (Gmail's "indent"
    button also makes a blockquote; indented text in a reply to the digest is rare.)
    <p> gets no blank lines around it: Outlook writes each line as a <p> with
    margin 0 (class MsoNormal) and marks blank lines with empty paragraphs.
    """
    # Imported here: lxml and inscriptis cost time that plain-text replies never need.
    from inscriptis.css_profiles import CSS_PROFILES  # type: ignore[import-untyped]
    from inscriptis.html_properties import Display  # type: ignore[import-untyped]
    from inscriptis.model.config import ParserConfig  # type: ignore[import-untyped]
    from inscriptis.model.html_element import HtmlElement  # type: ignore[import-untyped]

    css = dict(CSS_PROFILES["strict"])
    css["blockquote"] = HtmlElement(display=Display.none)
    css["p"] = HtmlElement(display=Display.block)
    return ParserConfig(css=css, display_links=False, display_images=False)


def _html_to_text(markup: str) -> str:
    from inscriptis import get_text  # type: ignore[import-untyped]

    text = get_text(markup, _html_config())
    return text if isinstance(text, str) else ""


# -- cutting quotes and signatures -------------------------------------------------------


@cache
def _signature() -> re.Pattern[str]:
    """Where a signature starts, built from mail-parser-reply's own patterns.

    The library's parts 1-3 (the "--" line, Outlook's underscore rule, device
    taglines) without part 4, the sign-off phrases (see the module docstring). The
    "--" pattern is the variant that leaves "- item" lists alone: the library's
    default takes any line starting with "-" for a signature.
    """
    taglines = "|".join(
        str(MAIL_LANGUAGES[lang]["sent_from"])
        for lang in LANGUAGES
        if MAIL_LANGUAGES.get(lang, {}).get("sent_from")
    )
    return re.compile(
        rf"(?:{NOLIST_SIGNATURE_REGEX}|{OUTLOOK_MAIL_SEPARATOR}"
        rf"|\s*^{QUOTED_MATCH_INCLUDE}(?:{taglines}) ?(?:[\w.<>:/ ]+|(?:\w+ ){{1,3}})$)"
        r"[\s\S]*",
        re.MULTILINE | re.IGNORECASE,
    )


def _split(text: str) -> Any:  # mail-parser-reply's EmailMessage, untyped upstream
    # The library normalises line ends and strips every line before matching.
    return ParsedText(text=text, languages=list(LANGUAGES), keep_hyphen_lists=True).read()


def _own_text(text: str) -> str:
    parsed = _split(text)
    first = parsed.replies[0]
    if not first.headers:
        # The text above the first reply header: the usual top-posted answer.
        return _clean(first.full_body, first.disclaimers)
    # The library skips an empty stretch before the first header, so a reply that
    # starts with the quote comes back as the quote. Fallback: when that quote is
    # ">"-quoted, the unquoted lines below the header are the user's (bottom-posting,
    # inline answers). Other quotes (Outlook's header block) are never ">"-quoted and
    # everything below them is the old message, so those give "".
    normalised = str(parsed.text)
    header = str(first.headers)
    at = normalised.find(header)
    below = normalised[at + len(header) :] if at >= 0 else ""
    lines = [line for line in below.split("\n") if line.strip()]
    if not lines or not _QUOTED_LINE.match(lines[0]):
        return ""
    unquoted = "\n".join(line for line in below.split("\n") if not _QUOTED_LINE.match(line))
    rest = _split(unquoted).replies[0]
    return "" if rest.headers else _clean(rest.full_body, rest.disclaimers)


def _clean(body: str, disclaimers: list[str]) -> str:
    """Drop disclaimers, the signature and ">" lines from the top-posted text."""
    text = str(body)
    for disclaimer in disclaimers:
        text = text.replace(str(disclaimer), "")
    text = _signature().sub("", text)
    # Fallback: ">" lines with no reply header above them (the user deleted it, or
    # answered inline) are still quotes.
    kept = [line for line in text.split("\n") if not _QUOTED_LINE.match(line)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
