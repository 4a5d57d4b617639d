"""Unit tests for ghostwatch.templates: the shipped templates, locale formatting, user
overrides, the sandbox and the load-time check.

The playbook's content elements are asserted phrase by phrase: a template that loses
one of them (the deadline in the final notice, "last check-in") fails here.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ghostwatch.businesstime import Calendar
from ghostwatch.errors import GhostwatchError
from ghostwatch.policy import DEFAULT_POLICIES
from ghostwatch.templates import (
    LOCALES,
    Locale,
    TemplateError,
    TemplateInfo,
    TemplateVars,
    check_templates,
    deadline_date,
    list_templates,
    render,
    sample_vars,
)

NBSP = "\xa0"

#: Every template a shipped policy step names.
DEFAULT_TEMPLATES = sorted(
    {s.template for p in DEFAULT_POLICIES.values() for s in p.steps if s.template is not None}
)


def vars_(locale: Locale = "en", **changes: object) -> TemplateVars:
    """The sample values with a round amount and dates that read unambiguously."""
    base = dataclasses.replace(
        sample_vars(locale),
        amount=Decimal("1200.00"),
        balance=Decimal("1200.00"),
        late_fee=Decimal("40.00"),
        total=Decimal("1240.00"),
        due_date=date(2026, 9, 1),
        original_date=date(2026, 11, 20),
        deadline_date=date(2026, 12, 7),
        days_overdue=97,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped set -------------------------------------------------------------------------


def test_default_policies_name_exactly_the_expected_templates() -> None:
    """The playbook's nine message kinds, as named by the shipped policies."""
    assert set(DEFAULT_TEMPLATES) == {
        "prospect_nudge",
        "prospect_last_check_in",
        "project_nudge",
        "work_paused",
        "kill_fee_notice",
        "payment_deliverables_check",
        "invoice_resend",
        "payment_notice",
        "final_notice",
    }


def test_every_default_template_is_shipped_in_english_and_italian() -> None:
    listed = {(t.name, t.locale): t for t in list_templates()}
    for name in DEFAULT_TEMPLATES:
        for locale in LOCALES:
            assert listed[(name, locale)].source == "shipped", (name, locale)
    assert listed[("final_notice", "it")] == TemplateInfo("final_notice", "it", "shipped", True)
    assert listed[("payment_notice", "en")].has_html
    assert not listed[("prospect_nudge", "en")].has_html


def test_shipped_templates_pass_the_check() -> None:
    """Every shipped template compiles, uses known names only and guards optional values."""
    assert check_templates(required=DEFAULT_TEMPLATES) == []


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("name", DEFAULT_TEMPLATES)
def test_every_shipped_template_renders_with_greeting_and_signature(
    name: str, locale: Locale
) -> None:
    out = render(name, vars_(locale), locale)
    assert out.subject is None  # replies keep "Re: <original subject>"
    assert out.text.startswith(("Hi Studio Verdi,", "Dear Studio Verdi,", "Gentile Studio Verdi,"))
    assert out.text.endswith("Anna Rossi\nIllustration & design\n")
    assert "None" not in out.text
    assert "{{" not in out.text and "{%" not in out.text
    if out.html is not None:
        assert out.html.startswith("<!DOCTYPE html>")
        assert f'<html lang="{locale}">' in out.html
        assert "Illustration &amp; design" in out.html


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("name", DEFAULT_TEMPLATES)
def test_every_shipped_template_renders_without_the_optional_values(
    name: str, locale: Locale
) -> None:
    """A step without a late fee or deadline still gets a whole message."""
    out = render(name, vars_(locale, late_fee=None, total=None, deadline_date=None), locale)
    assert "None" not in out.text
    assert out.text.rstrip().endswith("Illustration & design")


# --- playbook content, message by message ----------------------------------------------------

CONTENT: dict[tuple[str, str], tuple[str, ...]] = {
    ("prospect_nudge", "en"): ("following up", "20 November 2026", "Brand identity 2026"),
    ("prospect_nudge", "it"): ("Le riscrivo", "20 novembre 2026", "Brand identity 2026"),
    ("prospect_last_check_in", "en"): (
        "Thank you again for getting in touch about Brand identity 2026",
        "You seem to be busy right now",
        "this is my last check-in",
        "I'd really like to work with you",
        "in the future",
        "Whenever you're ready to start, just write to me",
    ),
    ("prospect_last_check_in", "it"): (
        "La ringrazio ancora per avermi scritto a proposito di Brand identity 2026",
        "periodo pieno di impegni",
        "questo è il mio ultimo messaggio",
        "Mi farebbe davvero piacere lavorare con Lei",
        "futuro",
        "Quando vorrà iniziare, mi scriva",
    ),
    ("project_nudge", "en"): ("Brand identity 2026", "20 November 2026", "feedback"),
    ("project_nudge", "it"): ("Brand identity 2026", "20 novembre 2026", "riscontro"),
    ("work_paused", "en"): (
        "putting the work on hold",
        "It will stay on hold until you get back in touch",
    ),
    ("work_paused", "it"): ("sospendo il lavoro", "resterà sospeso finché non tornerà a scrivermi"),
    ("kill_fee_notice", "en"): (
        "kill-fee clause of our contract",
        "stopping work on the project",
        "I will invoice the work done so far",
    ),
    ("kill_fee_notice", "it"): (
        "clausola di interruzione (kill fee) del nostro contratto",
        "interrompo quindi il lavoro",
        "Le fatturerò il lavoro svolto finora",
    ),
    ("payment_deliverables_check", "en"): (
        "final deliverables for Brand identity 2026",
        "reached you",
        "the next step is payment of invoice 2026-042",
    ),
    ("payment_deliverables_check", "it"): (
        "i materiali finali di Brand identity 2026",
        "Le siano arrivati",
        "il pagamento della fattura n. 2026-042",
    ),
    ("invoice_resend", "en"): (
        "invoice 2026-042",
        "the invoice is attached to this email",
        "a late fee of €40.00",
        "The new total is €1,240.00",
        "Bank transfer to IBAN",
    ),
    ("invoice_resend", "it"): (
        "fattura n. 2026-042",
        "che trova in allegato a questo messaggio",
        f"una penale di 40,00{NBSP}€",
        f"il nuovo totale è di 1.240,00{NBSP}€",
        "Bank transfer to IBAN",
    ),
    ("payment_notice", "en"): (
        "Invoice 2026-042",
        "is now 97 days overdue",
        "pay it without further delay",
        "I intend to take legal action",
        "A copy of the invoice is attached",
        "Bank transfer to IBAN",
    ),
    ("payment_notice", "it"): (
        "fattura n. 2026-042",
        "risulta non pagata da 97 giorni",
        "La invito a provvedere al pagamento senza ulteriore ritardo",
        "intendo agire per vie legali",
        "In allegato trova una copia della fattura",
        "Bank transfer to IBAN",
    ),
}


@pytest.mark.parametrize(("name", "locale"), sorted(CONTENT))
def test_template_carries_its_playbook_content(name: str, locale: Locale) -> None:
    text = render(name, vars_(locale), locale).text
    for phrase in CONTENT[(name, locale)]:
        assert phrase in text, f"{locale}/{name}: missing {phrase!r}"


def test_every_default_template_has_its_content_pinned() -> None:
    """The table above covers every shipped message but the final notice (below)."""
    pinned = {name for name, _ in CONTENT} | {"final_notice"}
    assert pinned == set(DEFAULT_TEMPLATES)


FINAL_NOTICE: dict[str, tuple[str, ...]] = {
    "en": (
        "Invoice number:     2026-042",
        "Project:            Brand identity 2026",
        "Days overdue:       97",
        "Unpaid balance:     €1,200.00",
        "Original due date:  1 September 2026",
        "the last letter I will send you about it",
        "If the amount due has not reached me by Monday, 7 December 2026, I will take legal action",
        "How to pay:\nBank transfer to IBAN IT60 X054 2811 1010 0000 0123 456\n"
        "Account holder: Anna Rossi",
        "anna@rossi.example",
        "+39 333 123 4567",
        "I hope we can settle this promptly.",
        "A copy of the invoice is attached",
    ),
    "it": (
        "Numero fattura:        2026-042",
        "Progetto:              Brand identity 2026",
        "Giorni di ritardo:     97",
        f"Saldo non pagato:      1.200,00{NBSP}€",
        "Scadenza originaria:   1 settembre 2026",
        "l'ultima comunicazione che Le invierò al riguardo",
        "entro lunedì 7 dicembre 2026, procederò per vie legali",
        "Modalità di pagamento:\nBank transfer to IBAN IT60 X054 2811 1010 0000 0123 456",
        "anna@rossi.example",
        "+39 333 123 4567",
        "Mi auguro che si possa risolvere la questione al più presto.",
        "In allegato trova una copia della fattura",
    ),
}


@pytest.mark.parametrize("locale", LOCALES)
def test_final_notice_carries_every_playbook_element(locale: Locale) -> None:
    out = render("final_notice", vars_(locale), locale)
    for phrase in FINAL_NOTICE[locale]:
        assert phrase in out.text, f"{locale}: missing {phrase!r}"
    assert out.html is not None
    for value in ("2026-042", "Brand identity 2026", "97", "anna@rossi.example"):
        assert value in out.html
    assert ("7 December 2026" if locale == "en" else "7 dicembre 2026") in out.html


@pytest.mark.parametrize("locale", LOCALES)
def test_final_notice_without_a_deadline_still_announces_legal_action(locale: Locale) -> None:
    text = render("final_notice", vars_(locale, deadline_date=None), locale).text
    assert ("legal action" if locale == "en" else "vie legali") in text
    assert "December" not in text and "dicembre" not in text


@pytest.mark.parametrize("days", [30, 60, 90])
def test_payment_notices_state_their_days_overdue(days: int) -> None:
    assert (
        f"is now {days} days overdue"
        in render("payment_notice", vars_(days_overdue=days), "en").text
    )
    assert (
        f"non pagata da {days} giorni"
        in render("payment_notice", vars_("it", days_overdue=days), "it").text
    )


def test_invoice_resend_without_a_late_fee_states_the_balance_only() -> None:
    text = render("invoice_resend", vars_(late_fee=None, total=None), "en").text
    assert "late fee" not in text
    assert "The amount outstanding is €1,200.00." in text
    assert "the invoice is attached" in text


# --- locale formatting -----------------------------------------------------------------------


def test_babel_formats_money_and_dates_per_locale(tmp_path: Path) -> None:
    """Pinned Babel output: en is en_GB, it is it_IT (a no-break space before the euro)."""
    line = '{{ money(amount) }}|{{ amount|money }}|{{ day(due_date) }}|{{ day(due_date, "full") }}|{{ money(amount, "USD") }}\n'
    write(tmp_path, "en/fmt.txt.j2", line)
    write(tmp_path, "it/fmt.txt.j2", line)
    values = vars_(amount=Decimal(1200), due_date=date(2026, 12, 7))
    assert render("fmt", values, "en", templates_dir=tmp_path).text == (
        "€1,200.00|€1,200.00|7 December 2026|Monday, 7 December 2026|US$1,200.00\n"
    )
    assert render("fmt", values, "it", templates_dir=tmp_path).text == (
        f"1.200,00{NBSP}€|1.200,00{NBSP}€|7 dicembre 2026|lunedì 7 dicembre 2026|1.200,00{NBSP}USD\n"
    )


def test_the_render_locale_wins_over_the_vars_locale() -> None:
    """Italian template, Italian formatting, even if the values were built for English."""
    text = render("payment_deliverables_check", vars_("en"), "it").text
    assert f"1.200,00{NBSP}€" in text and "1 settembre 2026" in text


# --- escaping and the subject line -----------------------------------------------------------


def test_html_is_autoescaped_and_text_is_not() -> None:
    hostile = '<script>alert("x")</script> & Co'
    out = render("payment_notice", vars_(client_name=hostile), "en")
    assert f"Dear {hostile}," in out.text
    assert out.html is not None
    assert "<script>" not in out.html
    assert "Dear &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co," in out.html


def test_multiline_values_become_escaped_lines_in_html() -> None:
    out = render("final_notice", vars_(payment_details="IBAN <1>\nBIC X"), "en")
    assert out.html is not None
    assert "IBAN &lt;1&gt;<br>\nBIC X" in out.html


def test_a_subject_line_is_taken_out_of_the_body(tmp_path: Path) -> None:
    write(
        tmp_path,
        "en/s.txt.j2",
        "Subject: Invoice {{ invoice_number }}\n\nHello {{ client_name }}\n",
    )
    out = render("s", vars_(), "en", templates_dir=tmp_path)
    assert out.subject == "Invoice 2026-042"
    assert out.text == "Hello Studio Verdi\n"


def test_a_line_break_in_a_value_cannot_leave_the_subject(tmp_path: Path) -> None:
    write(tmp_path, "en/s.txt.j2", "Subject: For {{ client_name }}\n\nBody\n")
    out = render(
        "s", vars_(client_name="X\r\nBcc: victim@example.test"), "en", templates_dir=tmp_path
    )
    assert out.subject == "For X Bcc: victim@example.test"
    assert out.text == "Body\n"


def test_shipped_templates_have_no_subject_line() -> None:
    for info in list_templates():
        assert render(info.name, vars_(info.locale), info.locale).subject is None  # type: ignore[arg-type]


# --- user templates --------------------------------------------------------------------------


def test_a_user_template_overrides_the_shipped_one(tmp_path: Path) -> None:
    write(tmp_path, "en/prospect_nudge.txt.j2", "Hey {{ client_name }}, any news?\n")
    out = render("prospect_nudge", vars_(), "en", templates_dir=tmp_path)
    assert out.text == "Hey Studio Verdi, any news?\n"
    # The other locale and the other templates are still the shipped ones.
    assert (
        "Gentile Studio Verdi"
        in render("prospect_nudge", vars_("it"), "it", templates_dir=tmp_path).text
    )
    listed = {(t.name, t.locale): t.source for t in list_templates(tmp_path)}
    assert listed[("prospect_nudge", "en")] == "user"
    assert listed[("prospect_nudge", "it")] == "shipped"


def test_overriding_the_text_drops_the_shipped_html(tmp_path: Path) -> None:
    """The two parts of one message must say the same thing: both come from the user."""
    write(tmp_path, "en/final_notice.txt.j2", "Pay {{ money(balance) }}.\n")
    out = render("final_notice", vars_(), "en", templates_dir=tmp_path)
    assert out.text == "Pay €1,200.00.\n"
    assert out.html is None


def test_a_user_html_template_without_text_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "en/work_paused.html.j2", "<p>On hold</p>\n")
    with pytest.raises(TemplateError, match=r"no en/work_paused\.txt\.j2 next to it") as info:
        render("work_paused", vars_(), "en", templates_dir=tmp_path)
    assert info.value.file.endswith("en/work_paused.html.j2")
    assert any("work_paused.html.j2" in p for p in check_templates(tmp_path))


def test_a_missing_italian_template_is_an_error_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path, "en/custom.txt.j2", "Hello {{ client_name }}\n")
    with pytest.raises(TemplateError) as info:
        render("custom", vars_("it"), "it", templates_dir=tmp_path)
    assert "it/custom.txt.j2" in str(info.value)
    assert isinstance(info.value, GhostwatchError)
    problems = check_templates(tmp_path)
    assert len(problems) == 1 and "it/custom.txt.j2" in problems[0]


def test_falling_back_to_english_happens_only_when_asked(tmp_path: Path) -> None:
    write(tmp_path, "en/custom.txt.j2", "Hello {{ client_name }}, {{ money(amount) }}\n")
    out = render("custom", vars_("it"), "it", templates_dir=tmp_path, fallback="en")
    assert out.text == "Hello Studio Verdi, €1,200.00\n"  # English text, English formatting


def test_an_unknown_variable_is_reported_with_its_file(tmp_path: Path) -> None:
    """Found statically, even in a branch the sample values never take."""
    for locale in LOCALES:
        write(tmp_path, f"{locale}/typo.txt.j2", "{% if false %}{{ clientname }}{% endif %}Hi\n")
    problems = check_templates(tmp_path)
    assert len(problems) == 2
    assert all("typo.txt.j2: unknown variable 'clientname'" in p for p in problems)


def test_an_unknown_variable_fails_render_with_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "en/typo.txt.j2", "Hi,\n\n{{ invoice_nr }}\n")
    with pytest.raises(TemplateError) as info:
        render("typo", vars_(), "en", templates_dir=tmp_path)
    assert info.value.file.endswith("en/typo.txt.j2")
    assert info.value.line == 3
    assert "'invoice_nr' is undefined" in str(info.value)


def test_an_unguarded_optional_value_is_reported(tmp_path: Path) -> None:
    for locale in LOCALES:
        write(tmp_path, f"{locale}/fee.txt.j2", "Late fee: {{ money(late_fee) }}\n")
        write(
            tmp_path,
            f"{locale}/ok.txt.j2",
            "{% if late_fee is not none %}{{ late_fee|money }}{% endif %}\n",
        )
    problems = check_templates(tmp_path)
    assert len(problems) == 2
    assert all("fee.txt.j2 line 1" in p and "when late_fee is not set" in p for p in problems)


def test_printing_none_fails_instead_of_writing_none(tmp_path: Path) -> None:
    write(tmp_path, "en/t.txt.j2", "Pay by {{ deadline_date }}\n")
    with pytest.raises(TemplateError, match="a printed value is None"):
        render("t", vars_(deadline_date=None), "en", templates_dir=tmp_path)


def test_a_syntax_error_is_reported_with_its_line(tmp_path: Path) -> None:
    for locale in LOCALES:
        write(tmp_path, f"{locale}/broken.txt.j2", "Hi\n{% if client_name %}\nno endif\n")
    problems = check_templates(tmp_path)
    assert len(problems) == 2
    assert all("broken.txt.j2 line" in p for p in problems)
    with pytest.raises(TemplateError) as info:
        render("broken", vars_(), "en", templates_dir=tmp_path)
    assert info.value.line is not None


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ client_name.__class__.__mro__[1].__subclasses__() }}",
        "{{ money.__globals__ }}",
    ],
)
def test_the_sandbox_refuses_attribute_escapes(tmp_path: Path, attack: str) -> None:
    for locale in LOCALES:
        write(tmp_path, f"{locale}/evil.txt.j2", f"Hi\n{attack}\n")
    problems = check_templates(tmp_path)
    assert len(problems) == 2
    assert all("evil.txt.j2 line 2" in p and "unsafe" in p for p in problems)
    with pytest.raises(TemplateError, match="refused by the sandbox") as info:
        render("evil", vars_(), "en", templates_dir=tmp_path)
    assert info.value.line == 2
    assert isinstance(info.value, GhostwatchError)


def test_misplaced_user_files_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "fr/prospect_nudge.txt.j2", "Bonjour\n")
    write(tmp_path, "en/prospect_nudge.txt", "forgot the .j2\n")
    write(tmp_path, "README.md", "my templates\n")
    problems = check_templates(tmp_path)
    assert len(problems) == 2
    assert any("fr/prospect_nudge.txt.j2: ignored" in p for p in problems)
    assert any("en/prospect_nudge.txt: ignored" in p for p in problems)


def test_required_template_names_must_exist() -> None:
    problems = check_templates(required=["my_nudge"])
    assert [p.split(": ", 1)[0].rsplit("/", 2)[-2:] for p in problems] == [
        ["en", "my_nudge.txt.j2"],
        ["it", "my_nudge.txt.j2"],
    ]


def test_a_missing_templates_directory_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert check_templates(missing) == [f"{missing}: templates directory does not exist"]
    with pytest.raises(TemplateError, match="does not exist"):
        render("prospect_nudge", vars_(), "en", templates_dir=missing)


# --- deadlines -------------------------------------------------------------------------------

IT = Calendar(tz="Europe/Rome", country="IT")


def test_business_day_deadline_skips_weekends_and_holidays() -> None:
    """From Friday 18 Dec 2026: Christmas (Fri) and the weekend do not count."""
    assert deadline_date(date(2026, 12, 18), "5 business days", IT) == date(2026, 12, 28)


def test_calendar_day_deadline_counts_every_day() -> None:
    assert deadline_date(date(2026, 12, 18), "30d", IT) == date(2027, 1, 17)


def test_deadline_refuses_a_bad_spec() -> None:
    with pytest.raises(ValueError, match="cannot read offset"):
        deadline_date(date(2026, 12, 18), "soonish", IT)


@pytest.mark.parametrize("locale", ["en", "it"])
def test_without_a_name_every_template_greets_without_one(locale: Locale) -> None:
    """No configured client and no display name: "Hi," / "Dear Sir or Madam," /
    "Buongiorno,", never an e-mail address or an empty "Hi ,"."""
    nameless = dataclasses.replace(sample_vars(locale), client_name="")
    greetings = {"en": ("Hi,", "Dear Sir or Madam,"), "it": ("Buongiorno,",)}[locale]
    for info in list_templates():
        first = render(info.name, nameless, locale).text.splitlines()[0]
        assert first in greetings, (info.name, first)
        named = render(info.name, sample_vars(locale), locale).text.splitlines()[0]
        assert "Studio Verdi" in named, (info.name, named)
