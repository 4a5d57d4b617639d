"""HeaderMap (the fast header splitter) reads fields as email.parser's compat32 does."""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32

from hypothesis import given, settings
from hypothesis import strategies as st

from ghostwatch.classify import HEADER_FIELDS, classify, raw_header_text
from ghostwatch.headers import HeaderMap

PARSER = BytesHeaderParser(policy=compat32)

NAMES = [*HEADER_FIELDS, "Message-ID", "References", "To", "Cc", "Date", "X-Other"]
VALUES = st.one_of(
    st.sampled_from(
        [
            "auto-replied",
            "bulk",
            "<list.example.test>",
            "<mailto:u@x.test>",
            "Out of Office: until Monday",
            "Risposta automatica: fuori sede",
            "=?utf-8?q?Abwesenheitsnotiz=3A_Urlaub?=",
            "MAILER-DAEMON@mx.test",
            '"Bob" <bob@client.test>',
            "noreply@shop.test",
            "<>",
            "multipart/report; report-type=delivery-status; boundary=x",
            'multipart/report; report-type="disposition-notification"',
            "Re: Preventivo",
            "",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)


def _block(fields: list[tuple[str, str, bool]]) -> bytes:
    lines = []
    for name, value, folded in fields:
        if folded and " " in value.strip():
            head, _, tail = value.strip().partition(" ")
            lines.append(f"{name}: {head}\r\n\t{tail}")
        else:
            lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(NAMES), VALUES, st.booleans()), max_size=12))
def test_classification_is_the_same_through_either_reader(
    fields: list[tuple[str, str, bool]],
) -> None:
    raw = _block(fields)
    assert classify(HeaderMap(raw)) == classify(PARSER.parsebytes(raw))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(NAMES), VALUES, st.booleans()), max_size=12))
def test_field_values_match_compat32(fields: list[tuple[str, str, bool]]) -> None:
    raw = _block(fields)
    fast, slow = HeaderMap(raw), PARSER.parsebytes(raw)
    for name in NAMES:
        got = [raw_header_text(v) for v in fast.get_all(name, [])]
        want = [raw_header_text(v) for v in slow.get_all(name, [])]
        assert got == want, name
    assert fast.get_content_type() == slow.get_content_type()


def test_eight_bit_values_survive_as_surrogate_escapes() -> None:
    raw = "Subject: Caff\u00e8\r\nFrom: Jos\u00e9 <j@x.test>\r\n\r\n".encode("latin-1")
    assert raw_header_text(HeaderMap(raw).get("Subject")) == "Caff\u00e8"


def test_garbage_lines_are_defects_not_errors() -> None:
    fields = HeaderMap(b" leading continuation\r\nno colon here\r\nSubject: ok\r\n\r\nBody: no")
    assert fields.get("Subject") == "ok"
    assert fields.get("Body") is None
    assert len(fields.defects) == 2


@given(st.binary(max_size=400))
def test_never_raises(raw: bytes) -> None:
    fields = HeaderMap(raw)
    fields.get_content_type()
    classify(fields)
