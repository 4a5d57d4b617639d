"""Unit tests for ghostwatch.policy: the policy config models and the shipped defaults.

Each refusal is checked through its message, since the message is what the user reads.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from ghostwatch.businesstime import OffsetKind
from ghostwatch.policy import (
    DEFAULT_POLICIES,
    DEFAULT_POLICIES_TOML,
    Client,
    Contract,
    Defaults,
    Policy,
    PolicySettings,
    Rule,
    SendWindow,
    Step,
    match_client,
)


def prospect(**step: Any) -> dict[str, Any]:
    """A [policies.prospect] table with one step (template filled in)."""
    return {"policies": {"prospect": {"steps": [{"name": "nudge", "template": "t", **step}]}}}


def refused(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        PolicySettings.model_validate(data)
    return str(info.value)


# --- the shipped defaults -------------------------------------------------------------------


def test_default_policies_toml_parses_to_default_policies() -> None:
    """The snippet for config.example.toml spells exactly the shipped policies."""
    data = tomllib.loads(DEFAULT_POLICIES_TOML)
    # Every policy is in the snippet, so the merge over the defaults cannot hide a gap.
    assert set(data["policies"]) == set(DEFAULT_POLICIES)
    parsed = PolicySettings.model_validate(data)
    assert parsed.policies == dict(DEFAULT_POLICIES)
    for name, policy in DEFAULT_POLICIES.items():
        assert parsed.policies[name].steps == policy.steps, name


def test_settings_without_policies_use_the_defaults() -> None:
    assert PolicySettings().policies == dict(DEFAULT_POLICIES)
    assert PolicySettings.from_toml("") == PolicySettings()


@pytest.mark.parametrize(
    ("policy", "step", "after", "anchor", "template", "firm"),
    [
        pytest.param("prospect", "nudge", "5 business days", "last_outgoing", "prospect_nudge",
                     False, id="prospect-first-follow-up-4-to-7-days"),
        pytest.param("prospect", "last_check_in", "7d", "previous", "prospect_last_check_in",
                     True, id="prospect-last-check-in-one-week-after-first"),
        pytest.param("project", "nudge", "tuesday of the following week", "last_outgoing",
                     "project_nudge", False, id="project-tuesday-of-the-week-after"),
        pytest.param("project", "work_paused", "5 business days", "previous", "work_paused",
                     True, id="project-pause-the-work-is-firm"),
        pytest.param("payment", "deliverables_check", "5 business days", "last_outgoing",
                     "payment_deliverables_check", False, id="payment-check-deliverables-first"),
        pytest.param("payment", "resend_with_late_fee", "7d", "previous", "invoice_resend", True,
                     id="payment-resend-with-late-fee"),
        pytest.param("payment", "notice_30", "30d", "due_date", "payment_notice", True,
                     id="payment-notice-30-days-after-due"),
        pytest.param("payment", "notice_60", "60d", "due_date", "payment_notice", True,
                     id="payment-notice-60-days-after-due"),
        pytest.param("payment", "notice_90", "90d", "due_date", "payment_notice", True,
                     id="payment-notice-90-days-after-due"),
        pytest.param("payment", "final_notice", "97d", "due_date", "final_notice", True,
                     id="payment-final-notice"),
    ],
)  # fmt: skip
def test_default_steps_follow_the_playbook(
    *, policy: str, step: str, after: str, anchor: str, template: str, firm: bool
) -> None:
    found = next(s for s in DEFAULT_POLICIES[policy].steps if s.name == step)
    assert (found.after, found.anchor, found.template, found.firm) == (
        after,
        anchor,
        template,
        firm,
    )
    # PLAYBOOK principle: anything firm goes to the approval queue.
    assert found.mode == "approve"


def test_default_prospect_nudge_lands_between_4_and_7_days() -> None:
    offset = DEFAULT_POLICIES["prospect"].steps[0].after_offset
    assert offset is not None
    assert 4 <= offset.minimum_days() <= 7


def test_default_prospect_policy_closes_as_moved_on() -> None:
    close = DEFAULT_POLICIES["prospect"].steps[-1]
    assert (close.action, close.outcome, close.anchor) == ("close", "moved on", "previous")


def test_default_project_investigates_then_pauses_then_kill_fee() -> None:
    steps = DEFAULT_POLICIES["project"].steps
    assert [s.name for s in steps] == ["nudge", "investigate", "work_paused", "kill_fee"]
    assert (steps[1].action, steps[1].task) == ("task", "investigate")
    assert steps[2].action == "pause"
    kill_fee = steps[3]
    assert (kill_fee.after_term, kill_fee.anchor, kill_fee.template, kill_fee.firm) == (
        "kill_fee_after",
        "first_unanswered",
        "kill_fee_notice",
        True,
    )


def test_default_payment_notices_attach_the_invoice_and_final_notice_sets_a_deadline() -> None:
    steps = {s.name: s for s in DEFAULT_POLICIES["payment"].steps}
    assert all(steps[n].attach_invoice for n in ("notice_30", "notice_60", "notice_90"))
    assert steps["resend_with_late_fee"].add_late_fee
    assert steps["final_notice"].deadline == "10 business days"
    small_claims = steps["small_claims"]
    assert (small_claims.action, small_claims.task, small_claims.anchor) == (
        "task",
        "small_claims",
        "previous",
    )


def test_default_ignore_policy_has_no_steps() -> None:
    assert DEFAULT_POLICIES["ignore"].steps == []


# --- the 4-day floor in the prospect stage --------------------------------------------------


@pytest.mark.parametrize(
    "after",
    [
        pytest.param("3d", id="3-days"),
        pytest.param("72h", id="72-hours"),
        pytest.param("3 business days", id="3-business-days"),
        pytest.param("2bd", id="2-business-days-short-form"),
        pytest.param("tuesday of the following week", id="tuesday-rule-can-be-2-days"),
        pytest.param("3 giorni lavorativi", id="italian-business-days"),
    ],
)
def test_prospect_step_under_4_days_is_refused(after: str) -> None:
    message = refused(prospect(after=after))
    assert "policy 'prospect', step 'nudge'" in message
    assert "under 4 days reads as pushy" in message
    assert "set allow_short = true to override" in message


@pytest.mark.parametrize("after", ["3d", "72h", "3 business days", "tuesday of the following week"])
def test_prospect_step_under_4_days_is_accepted_with_allow_short(after: str) -> None:
    settings = PolicySettings.model_validate(prospect(after=after, allow_short=True))
    assert settings.policies["prospect"].steps[0].after == after


@pytest.mark.parametrize("after", ["4d", "96h", "4 business days", "4 working days", "1 week"])
def test_prospect_step_of_4_days_or_more_is_accepted(after: str) -> None:
    PolicySettings.model_validate(prospect(after=after))


def test_floor_applies_to_later_prospect_steps_too() -> None:
    data = prospect(after="5d")
    data["policies"]["prospect"]["steps"].append({"name": "again", "after": "2d", "template": "t"})
    assert "step 'again'" in refused(data)


def test_floor_does_not_apply_outside_the_prospect_stage() -> None:
    data = {"policies": {"project": {"steps": [{"name": "n", "after": "2d", "template": "t"}]}}}
    assert PolicySettings.model_validate(data).policies["project"].steps[0].after == "2d"


def test_floor_applies_to_a_custom_policy_in_the_prospect_stage() -> None:
    data = {
        "policies": {
            "eager": {"stage": "prospect", "steps": [{"name": "n", "after": "1d", "template": "t"}]}
        }
    }
    assert "policy 'eager', step 'n'" in refused(data)


# --- steps ----------------------------------------------------------------------------------


def test_firm_step_may_not_send_automatically() -> None:
    """PLAYBOOK: firm messages go to the approval queue; only gentle nudges may be auto."""
    message = refused(prospect(after="5d", firm=True, mode="auto"))
    assert "firm" in message and "approval queue" in message


def test_payment_notice_may_not_send_automatically_even_unmarked() -> None:
    data = {"policies": {"payment": {"steps": [
        {"name": "n", "after": "5d", "template": "t", "attach_invoice": True, "mode": "auto"}
    ]}}}  # fmt: skip
    assert "a payment notice" in refused(data)


def test_gentle_nudge_may_send_automatically() -> None:
    settings = PolicySettings.model_validate(prospect(after="5d", mode="auto"))
    assert settings.policies["prospect"].steps[0].mode == "auto"


def test_pause_step_may_not_send_automatically() -> None:
    data = {"policies": {"project": {"steps": [
        {"name": "p", "after": "5d", "action": "pause", "template": "t", "mode": "auto"}
    ]}}}  # fmt: skip
    assert "always needs you" in refused(data)


def test_after_is_parsed_once_and_kept() -> None:
    step = Step(name="n", after="5 business days", template="t")
    assert step.after_offset is not None
    assert step.after_offset.kind is OffsetKind.BUSINESS_DAYS
    assert step.after_offset.amount == 5


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        pytest.param({"name": "n", "after": "soon", "template": "t"}, "cannot read offset",
                     id="unreadable-after"),
        pytest.param({"name": "n", "template": "t"}, "set exactly one of after",
                     id="after-missing"),
        pytest.param({"name": "n", "after": "5d"}, "sends a message: set template",
                     id="send-without-template"),
        pytest.param({"name": "n", "after": "5d", "action": "task"}, "a task step needs task",
                     id="task-without-kind"),
        pytest.param({"name": "n", "after": "5d", "action": "task", "task": "pray"},
                     "unknown task 'pray'", id="unknown-task-kind"),
        pytest.param({"name": "n", "after": "5d", "action": "close", "template": "t"},
                     "sends nothing: remove template", id="close-with-template"),
        pytest.param({"name": "n", "after": "5d", "template": "t", "reminders": ["fax"]},
                     "unknown reminder 'fax'", id="unknown-reminder"),
        pytest.param({"name": "n", "after": "5d", "action": "task", "task": "call",
                      "attach_invoice": True}, "go with a message", id="task-attaching-invoice"),
        pytest.param({"name": "n", "after": "5d", "template": "t", "deadline": "4 business days"},
                     "outside the playbook's range", id="deadline-under-5-business-days"),
        pytest.param({"name": "n", "after": "5d", "template": "t", "deadline": "31d"},
                     "outside the playbook's range", id="deadline-over-30-days"),
        pytest.param({"name": "n", "after": "5d", "template": "t", "deadline": "120h"},
                     "outside the playbook's range", id="deadline-in-hours"),
        pytest.param({"name": "n", "after": "5d", "template": "t", "outcome": "x"},
                     "outcome is only for action = 'close'", id="outcome-on-a-send"),
        pytest.param({"name": "n", "after": "5d", "template": "t", "colour": "red"},
                     "Extra inputs are not permitted", id="unknown-key"),
    ],
)  # fmt: skip
def test_invalid_step_is_refused(step: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        Step.model_validate(step)


@pytest.mark.parametrize("deadline", ["5 business days", "20 business days", "7d", "30d", "2w"])
def test_final_notice_deadline_in_the_playbook_range_is_accepted(deadline: str) -> None:
    step = Step(name="final", after="97d", template="t", deadline=deadline)
    assert step.deadline_offset is not None


def test_step_names_must_be_unique() -> None:
    data = prospect(after="5d")
    data["policies"]["prospect"]["steps"].append({"name": "nudge", "after": "7d", "template": "t"})
    assert "step names must be unique" in refused(data)


def test_anchors_default_to_last_outgoing_then_previous() -> None:
    policy = Policy(
        name="p",
        stage="project",
        steps=[Step(name="a", after="5d", template="t"), Step(name="b", after="5d", template="t")],
    )
    assert [s.anchor for s in policy.steps] == ["last_outgoing", "previous"]


def test_first_step_cannot_count_from_a_previous_step() -> None:
    assert "no previous step" in refused(prospect(after="5d", anchor="previous"))


def test_due_date_anchor_only_in_the_payment_stage() -> None:
    data = {"policies": {"project": {"steps": [
        {"name": "n", "after": "30d", "anchor": "due_date", "template": "t"}
    ]}}}  # fmt: skip
    assert "only a payment-stage policy may use it" in refused(data)


def test_ignore_policy_may_not_have_steps() -> None:
    data = {"policies": {"ignore": {"steps": [{"name": "n", "after": "5d", "template": "t"}]}}}
    assert "never follows up" in refused(data)


# --- settings -------------------------------------------------------------------------------


def test_user_policy_replaces_the_default_of_that_name_only() -> None:
    settings = PolicySettings.model_validate(prospect(after="6d"))
    assert [s.name for s in settings.policies["prospect"].steps] == ["nudge"]
    assert settings.policies["payment"] == DEFAULT_POLICIES["payment"]


def test_policy_name_must_match_its_key() -> None:
    data = {"policies": {"prospect": {"name": "other", "stage": "prospect"}}}
    assert "must equal the key" in refused(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"defaults": {"stage": "vip"}}, id="defaults-stage"),
        pytest.param({"rules": [{"stage": "vip", "domain": "acme.example"}]}, id="rule-stage"),
        pytest.param({"clients": [{"name": "Acme", "stage": "vip"}]}, id="client-stage"),
    ],
)
def test_stages_must_name_a_policy(data: dict[str, Any]) -> None:
    assert "no policy named 'vip'" in refused(data)


def test_defaults_are_the_documented_ones() -> None:
    d = Defaults()
    assert (d.stage, d.time_zone, d.country, d.locale) == ("prospect", "UTC", None, "en")
    assert (d.auto_reply_delay, d.auto_reply_cap, d.slow_client_days) == (
        "3 business days",
        "30d",
        5.0,
    )
    window = d.send_window
    assert (window.start, window.end, window.days) == (
        "09:00",
        "17:00",
        ["mon", "tue", "wed", "thu", "fri"],
    )
    assert window.workdays() == frozenset({0, 1, 2, 3, 4})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param({"time_zone": "Europe/Roma"}, "unknown time zone", id="bad-zone"),
        pytest.param({"country": "XX"}, "no public holidays known", id="bad-country"),
        pytest.param({"auto_reply_delay": "a while"}, "auto_reply_delay", id="bad-delay"),
        pytest.param({"send_window": {"start": "9am"}}, "HH:MM", id="bad-window-time"),
        pytest.param({"send_window": {"start": "18:00"}}, "spans midnight", id="empty-window"),
        pytest.param({"send_window": {"days": ["funday"]}}, "send window days", id="bad-day"),
    ],
)
def test_invalid_defaults_are_refused(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        Defaults.model_validate(data)


def test_send_window_days_are_normalised() -> None:
    window = SendWindow(days=["Friday", "mon", "MON"])
    assert window.days == ["mon", "fri"]


# --- clients and rules ----------------------------------------------------------------------

ACME = Client(name="Acme", addresses=["priya@acme.example"], domains=["acme.example"])
ACME_PERSONAL = Client(name="Priya", addresses=["boss@acme.example"])
GLOBEX = Client(name="Globex", domains=["globex.example"])


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        pytest.param("boss@acme.example", ACME_PERSONAL, id="exact-address-beats-domain"),
        pytest.param("Priya@ACME.example", ACME, id="case-insensitive"),
        pytest.param("someone@acme.example", ACME, id="domain"),
        pytest.param("x@eu.globex.example", GLOBEX, id="subdomain"),
        pytest.param("x@notglobex.example", None, id="not-a-suffix-match"),
        pytest.param("x@elsewhere.example", None, id="unknown"),
    ],
)
def test_match_client(address: str, expected: Client | None) -> None:
    assert match_client([ACME, ACME_PERSONAL, GLOBEX], address) == expected
    settings = PolicySettings(clients=[ACME, ACME_PERSONAL, GLOBEX])
    assert settings.client_for([address]) == expected


def test_client_with_free_mail_domain_is_refused() -> None:
    with pytest.raises(ValidationError, match="free-mail provider"):
        Client(name="X", domains=["gmail.com"])


def test_client_addresses_are_checked_and_lowercased() -> None:
    assert Client(name="X", addresses=[" Priya@Acme.Example "]).addresses == ["priya@acme.example"]
    with pytest.raises(ValidationError, match="not an email address"):
        Client(name="X", addresses=["priya"])


def test_client_zone_is_checked() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        Client(name="X", time_zone="Mars/Olympus")


def test_one_address_for_two_clients_is_refused() -> None:
    data = {
        "clients": [
            {"name": "A", "addresses": ["x@acme.example"]},
            {"name": "B", "addresses": ["x@acme.example"]},
        ]
    }
    assert "is listed for clients 'A' and 'B'" in refused(data)


def test_contract_reads_money_as_decimal() -> None:
    contract = Contract.model_validate({"late_fee_amount": 40, "late_fee_percent": 8.5})
    assert contract.late_fee_percent == Decimal("8.5")
    assert contract.kill_fee_offset is None
    with pytest.raises(ValidationError, match="kill_fee_after"):
        Contract(kill_fee_after="later")


RULE_INPUT: dict[str, Any] = {
    "counterparts": ["priya@acme.example"],
    "client": "Acme",
    "subject": "Invoice 2026-014",
    "attachments": ["Fattura-2026-014.PDF"],
    "folder": "INBOX",
}


@pytest.mark.parametrize(
    ("rule", "matches"),
    [
        pytest.param({"counterpart": "priya@acme.example"}, True, id="counterpart-exact"),
        pytest.param({"counterpart": "*@acme.example"}, True, id="counterpart-glob"),
        pytest.param({"counterpart": "bob@*"}, False, id="counterpart-glob-miss"),
        pytest.param({"domain": "acme.example"}, True, id="domain"),
        pytest.param({"client": "acme"}, True, id="client-name-any-case"),
        pytest.param({"subject": r"invoice \d+"}, True, id="subject-regex-any-case"),
        pytest.param({"subject": r"^quote"}, False, id="subject-regex-miss"),
        pytest.param({"attachment": "fattura-*.pdf"}, True, id="attachment-glob"),
        pytest.param({"folder": "Archive"}, False, id="folder-miss"),
        pytest.param({"domain": "acme.example", "folder": "Archive"}, False, id="all-must-match"),
    ],
)
def test_rule_matching(rule: dict[str, Any], matches: bool) -> None:
    assert Rule(stage="payment", **rule).matches(**RULE_INPUT) is matches


def test_rule_with_invalid_subject_regex_is_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="not a valid regex"):
        Rule(stage="payment", subject="invoice (")


def test_rule_without_criteria_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"set defaults\.stage instead"):
        Rule(stage="payment")
