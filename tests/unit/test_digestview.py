"""The digest renderer: subject, text part and HTML part of the morning email."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest

from ghostwatch.digestview import (
    TEXT_WIDTH,
    DigestContent,
    DigestViewError,
    DraftItem,
    Flag,
    RenderedDigest,
    TaskItem,
    Upcoming,
    is_empty,
    render_digest,
)
from ghostwatch.replycommands import HELP_TEXT_EN, HELP_TEXT_IT
from ghostwatch.templates import check_templates

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
TAG = "[gw:k3zq7w2mvd4xj5c6rnb2h7tqye]"
HOSTILE = "<script>alert(1)</script>"


def draft(number: int, **changes: object) -> DraftItem:
    item = DraftItem(
        number=number,
        row_id=100 + number,
        to=f"client{number}@example.test",
        subject=f"Re: Project {number}",
        step="nudge",
        why="no reply for 5 business days since Tue 24 Nov",
        body=f"Hi,\n\njust checking in about project {number}.\n\nMario",
        attachments=(),
        due_at=NOW + timedelta(hours=2, minutes=15),
    )
    return dataclasses.replace(item, **changes)  # type: ignore[arg-type]


def task(**changes: object) -> TaskItem:
    item = TaskItem(
        thread_id="t-1",
        counterpart="Acme Srl",
        subject="Re: Website",
        kind="call",
        text="Three emails unanswered: give them a call.",
        phone=None,
    )
    return dataclasses.replace(item, **changes)  # type: ignore[arg-type]


def upcoming(**changes: object) -> Upcoming:
    item = Upcoming(
        to="giulia@example.test",
        subject="Re: Quote",
        step="final_notice",
        at=NOW + timedelta(hours=30),
        stop_hint="reply `stop 4`",
    )
    return dataclasses.replace(item, **changes)  # type: ignore[arg-type]


def content(
    locale: Literal["en", "it"] = "en",
    *,
    drafts: int = 0,
    tasks: int = 0,
    flags: int = 0,
    upcomings: int = 0,
    **changes: object,
) -> DigestContent:
    made = DigestContent(
        owner_name="Mario",
        account="mario@example.test",
        generated_at=NOW,
        time_zone="Europe/Rome",
        locale=locale,
        drafts=tuple(draft(n) for n in range(1, drafts + 1)),
        tasks=tuple(task(thread_id=f"t-{n}") for n in range(tasks)),
        flags=tuple(Flag("slow_client", f"Client {n} answers in 9 days") for n in range(flags)),
        upcoming=tuple(upcoming() for _ in range(upcomings)),
        token_tag=TAG,
        help_text=HELP_TEXT_EN if locale == "en" else HELP_TEXT_IT,
    )
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


def busy(locale: Literal["en", "it"] = "en") -> DigestContent:
    return content(locale, drafts=3, tasks=2, flags=2, upcomings=1)


def body_text(body: str) -> str:
    return "\n".join(f"    {line}" if line else "" for line in body.splitlines())


# --- numbers and commands ----------------------------------------------------------------


def test_drafts_are_numbered_with_their_commands() -> None:
    text = render_digest(busy()).text
    for n in (1, 2, 3):
        assert f"\n{n}. To: client{n}@example.test\n" in text
        assert f"   Subject: Re: Project {n}\n" in text
        assert f"   reply: send {n} · skip {n} · snooze {n} 3d · edit {n}\n" in text
    assert "   Why now: no reply for 5 business days since Tue 24 Nov\n" in text
    assert "   Attachments: none\n" in text
    assert text.index("1. To:") < text.index("2. To:") < text.index("3. To:")


def test_italian_commands_use_the_italian_verbs() -> None:
    rendered = render_digest(busy("it"))
    assert "   rispondi: invia 2 · salta 2 · rimanda 2 3g · modifica 2\n" in rendered.text
    assert "1. A: client1@example.test\n" in rendered.text
    assert "   Allegati: nessuno\n" in rendered.text
    for command in ("invia 2", "salta 2", "rimanda 2 3g", "modifica 2"):
        assert f">{command}</span>" in rendered.html


def test_numbers_are_the_callers_not_positions() -> None:
    digest = dataclasses.replace(content(), drafts=(draft(4), draft(7)))
    text = render_digest(digest).text
    assert "\n4. To: client4@example.test" in text and "send 7 · skip 7" in text


def test_html_shows_each_command_in_a_monospace_pill() -> None:
    html = render_digest(busy()).html
    pill = re.search(r"<span style=\"(?P<style>[^\"]*)\">send 1</span>", html)
    assert pill is not None
    assert "monospace" in pill["style"] and "border-radius" in pill["style"]


def test_attachments_and_automatic_drafts_are_shown() -> None:
    digest = dataclasses.replace(
        content(), drafts=(draft(1, attachments=("invoice-42.pdf", "terms.pdf"), auto=True),)
    )
    text = render_digest(digest).text
    assert "   Attachments: invoice-42.pdf, terms.pdf\n" in text
    assert "   Goes out on its own: Mon 30 Nov, 10:15, unless you skip it\n" in text


# --- subject -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "counts", "summary"),
    [
        ("en", (1, 0, 0, 0), "1 draft to approve"),
        ("en", (2, 1, 0, 0), "2 drafts to approve, 1 task"),
        ("en", (0, 3, 1, 0), "3 tasks, 1 flag"),
        ("en", (1, 1, 2, 2), "1 draft to approve, 1 task, 2 flags, 2 going out on their own"),
        ("en", (0, 0, 0, 1), "1 going out on its own"),
        ("it", (1, 0, 0, 0), "1 bozza da approvare"),
        ("it", (2, 1, 0, 0), "2 bozze da approvare, 1 attività"),
        ("it", (0, 3, 1, 0), "3 attività, 1 avviso"),
        ("it", (0, 0, 2, 1), "2 avvisi, 1 invio automatico"),
        ("it", (0, 0, 0, 2), "2 invii automatici"),
    ],
)
def test_subject_counts_are_pluralised(
    locale: Literal["en", "it"], counts: tuple[int, int, int, int], summary: str
) -> None:
    drafts, tasks, flags, upcomings = counts
    digest = content(locale, drafts=drafts, tasks=tasks, flags=flags, upcomings=upcomings)
    assert render_digest(digest).subject == f"ghostwatch: {summary} {TAG}"


def test_the_subject_ends_with_the_token_even_if_the_tag_is_mangled() -> None:
    rendered = render_digest(content(drafts=1, token_tag="[gw:abc]\r\nBcc: x@y"))
    assert "\n" not in rendered.subject and "\r" not in rendered.subject
    assert rendered.subject.endswith("[gw:abc] Bcc: x@y")


# --- empty -------------------------------------------------------------------------------


@pytest.mark.parametrize(("locale", "words"), [("en", "nothing new"), ("it", "niente di nuovo")])
def test_an_empty_digest_says_nothing_new(locale: Literal["en", "it"], words: str) -> None:
    digest = content(locale)
    assert is_empty(digest)
    rendered = render_digest(digest)
    assert rendered.subject == f"ghostwatch: {words} {TAG}"
    assert "DRAFTS" not in rendered.text and "BOZZE" not in rendered.text
    assert "<html" in rendered.html


@pytest.mark.parametrize("counts", [{"drafts": 1}, {"tasks": 1}, {"flags": 1}, {"upcomings": 1}])
def test_anything_at_all_makes_it_not_empty(counts: dict[str, int]) -> None:
    assert not is_empty(content(**counts))  # type: ignore[arg-type]


# --- bodies: verbatim in text, escaped in HTML ---------------------------------------------


def test_bodies_are_verbatim_and_indented_not_quoted() -> None:
    body = (
        "Hi Bob,\n\n"
        "  IBAN IT60 X054 2811 1010 0000 0123 456\n"
        + "a line far longer than the digest's own lines, " * 4
        + "\n> not a quote, just text\n\nMario"
    )
    digest = dataclasses.replace(content(), drafts=(draft(1, body=body),))
    text = render_digest(digest).text
    assert body_text(body) in text
    assert not any(line.startswith(">") for line in text.splitlines())


def test_bodies_with_windows_line_ends_are_shown_line_by_line() -> None:
    digest = dataclasses.replace(content(), drafts=(draft(1, body="Hi,\r\n\r\nthanks\r\n"),))
    text = render_digest(digest).text
    assert "\n    Hi,\n\n    thanks\n" in text and "\r" not in text


def hostile_digest(locale: Literal["en", "it"] = "en") -> DigestContent:
    evil = HOSTILE + "</div></td></tr></table>"
    return dataclasses.replace(
        busy(locale),
        owner_name=evil,
        account=evil,
        drafts=(
            draft(
                1,
                to=f'"{evil}" <x@example.test>',
                subject=f"Re: {evil}",
                why=evil,
                body=f"Hi,\n{evil}\n<img src=https://evil.example/p.png>",
                attachments=(f"{evil}.pdf",),
            ),
        ),
        tasks=(task(counterpart=evil, subject=evil, text=evil, phone=evil, checklist=(evil,)),),
        flags=(Flag(evil, evil),),
        upcoming=(upcoming(to=evil, subject=evil, step=evil, stop_hint=f"`{evil}`"),),
        help_text=f"{evil}\n  {evil}   {evil}\n",
    )


@pytest.mark.parametrize("locale", ["en", "it"])
def test_untrusted_values_are_escaped_in_html(locale: Literal["en", "it"]) -> None:
    html = render_digest(hostile_digest(locale)).html
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;/div&gt;&lt;/td&gt;" in html
    # The markup is the template's alone: the same tags as for harmless values.
    plain = render_digest(busy(locale)).html

    def tags(page: str) -> dict[str, int]:
        names = ("<div", "</div>", "<table", "</table>", "<td", "</td>", "<a ", "<img")
        return {name: page.count(name) for name in names}

    assert tags(html) == tags(render_digest(_defanged(hostile_digest(locale))).html)
    assert tags(plain)["<img"] == 0


def _defanged(digest: DigestContent) -> DigestContent:
    """``digest`` with the angle brackets of every value turned into parentheses."""

    def clean(value: object) -> object:
        if isinstance(value, str):
            return value.replace("<", "(").replace(">", ")")
        if isinstance(value, tuple):
            return tuple(clean(v) for v in value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.replace(
                value,
                **{f.name: clean(getattr(value, f.name)) for f in dataclasses.fields(value)},
            )
        return value

    cleaned = clean(digest)
    assert isinstance(cleaned, DigestContent)
    return cleaned


def test_the_phone_link_holds_only_digits() -> None:
    digest = dataclasses.replace(
        content(), tasks=(task(phone='+39 02 1234" onclick="x'), task(phone="javascript:1"))
    )
    html = render_digest(digest).html
    assert 'href="tel:+39021234"' in html
    assert "javascript:1</" in html and 'href="javascript' not in html
    assert "onclick=" not in html.replace("onclick=&#34;", "")


def test_values_from_mail_cannot_forge_lines_in_the_text() -> None:
    digest = dataclasses.replace(
        content(),
        drafts=(draft(1, subject="Re: hi\r\nsend all\u2028stop 2", why="x\nskip 1"),),
    )
    lines = render_digest(digest).text.splitlines()
    assert "   Subject: Re: hi send all stop 2" in lines
    assert not any(line.strip() in ("send all", "stop 2", "skip 1") for line in lines)


def test_bidi_overrides_are_removed_from_one_line_values() -> None:
    digest = dataclasses.replace(content(), drafts=(draft(1, to="evil\u202egnp.exe@x.test"),))
    rendered = render_digest(digest)
    assert "\u202e" not in rendered.text and "\u202e" not in rendered.html


# --- times -------------------------------------------------------------------------------


def test_times_are_shown_in_the_digests_zone() -> None:
    due = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
    digest = dataclasses.replace(content(), drafts=(draft(1, due_at=due),))
    rome = render_digest(digest)
    assert "   Due: Mon 30 Nov, 10:15\n" in rome.text
    assert "Mon 30 Nov, 10:15" in rome.html
    assert "Mon 30 Nov, 08:00" in rome.text  # generated_at, 07:00 UTC
    assert "Europe/Rome" in rome.text
    york = render_digest(dataclasses.replace(digest, time_zone="America/New_York"))
    assert "   Due: Mon 30 Nov, 04:15\n" in york.text


def test_italian_times_use_italian_names() -> None:
    digest = dataclasses.replace(
        content("it"), upcoming=(upcoming(at=datetime(2026, 12, 1, 13, 0, tzinfo=UTC)),)
    )
    text = render_digest(digest).text
    assert "- mar 1 dic, 14:00 · final notice\n" in text
    assert "  Per fermarla: reply `stop 4`\n" in text


def test_the_year_is_shown_only_when_it_is_not_this_one() -> None:
    late = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
    digest = dataclasses.replace(content(), upcoming=(upcoming(at=late),))
    assert "- Mon 4 Jan 2027, 10:00 · final notice" in render_digest(digest).text


def test_naive_datetimes_and_unknown_zones_are_refused() -> None:
    with pytest.raises(DigestViewError, match="timezone-aware"):
        draft(1, due_at=datetime(2026, 11, 30, 9, 15))
    with pytest.raises(DigestViewError, match="timezone-aware"):
        upcoming(at=datetime(2026, 11, 30, 9, 15))
    with pytest.raises(DigestViewError, match="timezone-aware"):
        content(generated_at=datetime(2026, 11, 30, 9, 15))
    with pytest.raises(DigestViewError, match="Mars/Olympus"):
        render_digest(content(drafts=1, time_zone="Mars/Olympus"))
    with pytest.raises(DigestViewError, match="repeat"):
        dataclasses.replace(content(), drafts=(draft(1), draft(1)))
    with pytest.raises(DigestViewError, match="start at 1"):
        draft(0)


# --- tasks, flags, upcoming, order -------------------------------------------------------


def test_tasks_show_the_phone_or_say_there_is_none() -> None:
    digest = dataclasses.replace(
        content(),
        tasks=(
            task(),
            task(kind="small_claims", phone="+39 02 1234 5678", checklist=("File form A",)),
        ),
    )
    text = render_digest(digest).text
    assert "- Call · Acme Srl · Re: Website\n" in text
    assert "  Phone: no phone on file\n" in text
    assert "- Small claims · Acme Srl" in text
    assert "  Phone: +39 02 1234 5678\n" in text
    assert "  [ ] File form A\n" in text
    it = render_digest(dataclasses.replace(digest, locale="it")).text
    assert "  Telefono: nessun telefono salvato\n" in it


def test_unknown_kinds_are_shown_readably() -> None:
    digest = dataclasses.replace(
        content(), tasks=(task(kind="renew_domain"),), flags=(Flag("odd_thing", "42"),)
    )
    text = render_digest(digest).text
    assert "- Renew domain · Acme Srl" in text and "- Odd thing: 42\n" in text


def test_flags_include_uncertain_sends() -> None:
    digest = dataclasses.replace(
        content(),
        flags=(
            Flag("slow_client", "Acme usually answers in 9 days (median of 6 replies)"),
            Flag("uncertain_send", "Reminder to Tom on Fri 27 Nov: not confirmed"),
        ),
    )
    rendered = render_digest(digest)
    assert "- Slow client: Acme usually answers in 9 days (median of 6 replies)\n" in rendered.text
    assert "- Uncertain send: Reminder to Tom on Fri 27 Nov: not confirmed\n" in rendered.text
    assert "Uncertain send:" in rendered.html


@pytest.mark.parametrize(
    ("locale", "headings"),
    [
        (
            "en",
            (
                "DRAFTS TO APPROVE (3)",
                "TASKS (2)",
                "FLAGS (2)",
                "GOING OUT ON THEIR OWN IN THE NEXT 48 HOURS (1)",
                "HOW TO ANSWER",
            ),
        ),
        (
            "it",
            (
                "BOZZE DA APPROVARE (3)",
                "ATTIVITÀ (2)",
                "AVVISI (2)",
                "PARTONO DA SOLE NELLE PROSSIME 48 ORE (1)",
                "COME RISPONDERE",
            ),
        ),
    ],
)
def test_sections_come_in_order(locale: Literal["en", "it"], headings: tuple[str, ...]) -> None:
    rendered = render_digest(busy(locale))
    lines = rendered.text.splitlines()
    positions = [lines.index(h) for h in headings]
    assert positions == sorted(positions)
    assert all(lines[p + 1] == "=" * len(headings[i]) for i, p in enumerate(positions))
    html_titles = [h.split(" (")[0] for h in headings]
    html_positions = [rendered.html.lower().index(f">{t.lower()}") for t in html_titles]
    assert html_positions == sorted(html_positions)


def test_help_text_comes_last_and_keeps_its_commands() -> None:
    text = render_digest(busy()).text
    how = text.index("HOW TO ANSWER")
    assert text.index("Reply to this email with one command per line", how) > how
    assert "\n  skip 2                   do not send draft 2 this time\n" in text
    assert "\n  edit 1                   replace draft 1 with the text on the lines below\n" in text


# --- layout rules ------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["en", "it"])
def test_text_lines_fit_outside_the_draft_bodies(locale: Literal["en", "it"]) -> None:
    long_body = "x" * 120 + "\n" + "word " * 40
    digest = dataclasses.replace(
        busy(locale),
        owner_name="Maximiliano " * 8,
        drafts=(
            draft(1, body=long_body, subject="Re: " + "very long subject " * 8),
            draft(12, to="a" * 100 + "@example.test", why="because " * 20),
        ),
        tasks=(task(text="call " * 30, checklist=("item " * 30,)),),
        flags=(Flag("late_payer", "pays late " * 15),),
        upcoming=(upcoming(stop_hint="ghostwatch skip 12 " * 6),),
    )
    rendered = render_digest(digest)
    body_lines = {f"    {line}" for d in digest.drafts for line in d.body.splitlines()}
    too_long = [
        line
        for line in rendered.text.splitlines()
        if len(line) > TEXT_WIDTH and line not in body_lines
    ]
    assert too_long == []
    assert any(len(line) > TEXT_WIDTH for line in body_lines)  # bodies really were long


def test_html_is_self_contained_and_phone_sized() -> None:
    html = render_digest(busy()).html
    lower = html.lower()
    for forbidden in ("<script", "<style", "<link", "<img", "<iframe", "@import", "url("):
        assert forbidden not in lower, forbidden
    assert not re.search(r"""(?:src|href|background|action)\s*=\s*["']?\s*(?:https?:)?//""", lower)
    assert "http://" not in lower and "https://" not in lower
    assert '<html lang="en">' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "max-width:600px" in html
    assert "white-space:pre-wrap" in html
    assert 'role="presentation"' in html
    sizes = [int(s) for s in re.findall(r"font-size:\s*(\d+)px", html)]
    assert sizes and min(sizes) >= 15
    assert '<html lang="it">' in render_digest(busy("it")).html


def test_html_body_keeps_line_breaks_and_links_stay_text() -> None:
    body = "Hi,\n\nPay at https://pay.example.test/i/42\n\nMario"
    digest = dataclasses.replace(content(), drafts=(draft(1, body=body),))
    html = render_digest(digest).html
    assert "Hi,<br><br>Pay at https://pay.example.test/i/42<br><br>Mario</div>" in html
    assert 'href="https' not in html


def test_rendering_is_deterministic_and_typed() -> None:
    first, second = render_digest(busy()), render_digest(busy())
    assert isinstance(first, RenderedDigest) and first == second
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.subject = "x"  # type: ignore[misc]


def test_the_digest_template_does_not_upset_the_step_template_checker() -> None:
    assert check_templates() == []
