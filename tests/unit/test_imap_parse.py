"""The fast FETCH response reader agrees with imapclient's full parser."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ghostwatch.imap import parse_header_fetch, parse_internaldate

HDR = b"Message-ID: <a@x>\r\nSubject: hi\r\n\r\n"


def test_reads_uid_date_size_and_header_literal() -> None:
    data = [
        (b'1 (UID 7 INTERNALDATE "17-Jul-1996 02:44:25 -0700" RFC822.SIZE 4286 '
         b"BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT)] {33}", HDR),
        b")",
    ]  # fmt: skip
    [item] = parse_header_fetch(data)
    assert item.uid == 7
    assert item.size == 4286
    assert item.header == HDR
    assert item.internal_date == datetime(1996, 7, 17, 9, 44, 25, tzinfo=UTC)
    assert item.gm_msgid is None


def test_reads_gmail_items_after_the_literal() -> None:
    data = [
        (b'1 (UID 7 INTERNALDATE " 1-Dec-2026 10:00:00 +0100" RFC822.SIZE 10 '
         b"BODY[HEADER.FIELDS (MESSAGE-ID)] {33}", HDR),
        b" X-GM-MSGID 1278455344230334865 X-GM-THRID 1266894439832287888)",
    ]  # fmt: skip
    [item] = parse_header_fetch(data)
    assert item.gm_msgid == 1278455344230334865
    assert item.gm_thrid == 1266894439832287888
    assert item.internal_date == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_an_empty_header_section_and_unsolicited_flags_are_handled() -> None:
    data = [
        b"3 (FLAGS (\\Seen))",
        b'4 (UID 9 INTERNALDATE "01-Jan-2026 00:00:00 +0000" RFC822.SIZE 5 '
        b'BODY[HEADER.FIELDS (MESSAGE-ID)] "")',
        (b'5 (UID 10 INTERNALDATE "01-Jan-2026 00:00:00 +0000" RFC822.SIZE 5 '
         b"BODY[HEADER.FIELDS (MESSAGE-ID)] {33}", HDR),
        b")",
    ]  # fmt: skip
    items = parse_header_fetch(data)
    assert [(i.uid, i.header) for i in items] == [(9, b""), (10, HDR)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"17-Jul-1996 02:44:25 -0700", datetime(1996, 7, 17, 9, 44, 25, tzinfo=UTC)),
        (b" 7-Nov-2026 23:30:00 +0530", datetime(2026, 11, 7, 18, 0, tzinfo=UTC)),
        (b"garbage", datetime(1970, 1, 1, tzinfo=UTC)),
        (b"31-Feb-2026 00:00:00 +0000", datetime(1970, 1, 1, tzinfo=UTC)),
    ],
    ids=["rfc3501-example", "space-padded-day-and-half-hour-zone", "garbage", "impossible-day"],
)
def test_internaldate(raw: bytes, expected: datetime) -> None:
    assert parse_internaldate(raw) == expected
