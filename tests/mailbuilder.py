"""Building RFC 5322 messages for tests: plain, deterministic, any date."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.message import EmailMessage


def make_mail(
    *,
    frm: str,
    to: Sequence[str] | str,
    subject: str,
    msgid: str | None,
    date: datetime,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    body: str = "Hello,\n\njust checking in.\n",
    cc: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """A text/plain message; ``msgid=None`` leaves Message-ID out."""
    msg = EmailMessage()
    msg["From"] = frm
    msg["To"] = to if isinstance(to, str) else ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(date)
    if msgid is not None:
        msg["Message-ID"] = msgid
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()
