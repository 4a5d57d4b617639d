"""Follow-up policies: the ``[defaults]``, ``[[clients]]``, ``[[rules]]`` and ``[policies]``
tables of the config, validated by pydantic, and the shipped default policies.

A thread's *stage* names one entry of ``policies``; the policy's ``stage`` field says
which playbook stage it implements (prospect, project, payment, ignore), which decides
what the validator allows (the 4-day floor, the ``due_date`` anchor). Steps run in
order, each at most once per silence. When the step is due is described by ``after``
(see :func:`ghostwatch.businesstime.parse_offset`) counted from its ``anchor``:

* ``last_outgoing``: your last message in the thread (the default for the first step);
* ``previous``: when the previous step was done (the default afterwards);
* ``due_date``: the invoice's due date at the start of the send window (payment only);
* ``first_unanswered``: your first message of the silence, before any follow-up (the
  kill fee counts from there).

The engine (:mod:`ghostwatch.engine`) turns these into planned steps; nothing here
reads a clock or performs I/O.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from datetime import time
from decimal import Decimal
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ghostwatch.addresses import check_address
from ghostwatch.businesstime import Calendar, Offset, OffsetKind, parse_offset
from ghostwatch.judgment import FREEMAIL_DOMAINS, domain_of

__all__ = [
    "DEFAULT_POLICIES",
    "DEFAULT_POLICIES_TOML",
    "PROSPECT_FLOOR_DAYS",
    "REMINDERS",
    "STAGES",
    "TASK_KINDS",
    "Client",
    "Contract",
    "Defaults",
    "Policy",
    "PolicySettings",
    "Rule",
    "SendWindow",
    "Step",
    "match_client",
]

StageKind = Literal["prospect", "project", "payment", "ignore"]
Anchor = Literal["last_outgoing", "previous", "due_date", "first_unanswered"]
Action = Literal["send", "task", "pause", "close"]
Mode = Literal["auto", "approve"]

STAGES: tuple[str, ...] = ("prospect", "project", "payment", "ignore")

#: PLAYBOOK stage 1: "Anything under 4 days reads as pushy or desperate".
PROSPECT_FLOOR_DAYS = 4

#: Task kinds a ``task`` step may name; the engine writes each one's checklist.
TASK_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "investigate": "compare addresses, call if a phone is on file, check activity elsewhere",
        "call": "call the client to confirm the message arrived",
        "check_address": "a message bounced: find a working address",
        "address_mismatch": "they last wrote from another address than the one we write to",
        "small_claims": "file at the small-claims court in your jurisdiction",
    }
)

#: Reminders a step may add to the digest next to its message.
REMINDERS: Mapping[str, str] = MappingProxyType(
    {
        "certified_mail": "send a copy by certified mail as well",
        "call_to_confirm": "phone the client to confirm receipt",
        "invoice_work_done": "invoice the work done so far (kill-fee clause)",
    }
)

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


class _Strict(BaseModel):
    # Parsed forms of string fields (offsets, regexes) are ``cached_property``s: pydantic
    # leaves them out of equality and dumps, and after the first access they are plain
    # attribute reads, which the engine does for every thread. Each validator touches
    # them once so that a bad value is refused at load.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _required_offset(value: str, what: str) -> Offset:
    try:
        return parse_offset(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _offset(value: str | None, what: str) -> Offset | None:
    return None if value is None else _required_offset(value, what)


def _check_region(time_zone: str, country: str | None) -> None:
    # Calendar validates both and phrases the error for the user.
    Calendar(tz=time_zone, country=country)


# --- defaults ---------------------------------------------------------------------------


class SendWindow(_Strict):
    """When messages may go out, in the client's local time: ``[start, end)`` on ``days``."""

    start: str = "09:00"
    end: str = "17:00"
    days: list[str] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"{value!r} is not a time of day: write it as HH:MM, e.g. '09:00'")
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        names = [d.strip().lower() for d in value]
        days = [_WEEKDAYS[full.index(d)] if d in full else d for d in names]
        if not days or any(d not in _WEEKDAYS for d in days):
            raise ValueError(
                f"send window days {value!r}: use a non-empty list of "
                + ", ".join(repr(d) for d in _WEEKDAYS)
            )
        return sorted(set(days), key=_WEEKDAYS.index)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.start < self.end:
            raise ValueError(
                f"send window {self.start}-{self.end} is empty or spans midnight: "
                "start must be earlier than end"
            )
        return self

    def start_time(self) -> time:
        return time.fromisoformat(self.start)

    def end_time(self) -> time:
        return time.fromisoformat(self.end)

    def workdays(self) -> frozenset[int]:
        return frozenset(_WEEKDAYS.index(d) for d in self.days)


class Defaults(_Strict):
    """What applies to a client who does not say otherwise."""

    stage: str = "prospect"
    time_zone: str = "UTC"
    country: str | None = None
    locale: Literal["en", "it"] = "en"
    send_window: SendWindow = Field(default_factory=SendWindow)
    auto_reply_delay: str = "3 business days"
    auto_reply_cap: str = "30d"
    slow_client_days: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> Self:
        _check_region(self.time_zone, self.country)
        _ = self.auto_reply_delay_offset, self.auto_reply_cap_offset
        return self

    @cached_property
    def auto_reply_delay_offset(self) -> Offset:
        """How long to wait after an auto-reply that names no return date."""
        return _required_offset(self.auto_reply_delay, "auto_reply_delay")

    @cached_property
    def auto_reply_cap_offset(self) -> Offset:
        """The longest an auto-reply may postpone a step, counted from the auto-reply."""
        return _required_offset(self.auto_reply_cap, "auto_reply_cap")


# --- clients ----------------------------------------------------------------------------


class Contract(_Strict):
    """Contract terms the engine and the digest use (PLAYBOOK: safeguards)."""

    deposit_percent: Decimal | None = Field(default=None, ge=0, le=100)
    kill_fee_after: str | None = None
    late_fee_amount: Decimal = Field(default=Decimal(0), ge=0)
    late_fee_percent: Decimal = Field(default=Decimal(0), ge=0, le=100)
    payment_terms_days: int = Field(default=30, ge=0, le=365)
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")

    @model_validator(mode="after")
    def _check(self) -> Self:
        _ = self.kill_fee_offset
        return self

    @cached_property
    def kill_fee_offset(self) -> Offset | None:
        return _offset(self.kill_fee_after, "kill_fee_after")


class Client(_Strict):
    """Someone you work for: how to recognise their mail and where they are."""

    name: str = Field(min_length=1)
    addresses: list[str] = Field(default_factory=list)
    domains: list[str] = Field(default_factory=list)
    phone: str | None = None
    time_zone: str | None = None
    locale: Literal["en", "it"] = "en"
    country: str | None = None
    stage: str | None = None
    contract: Contract | None = None
    notes: str = ""

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        return [check_address(v) for v in value]

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        domains = [v.strip().lower().lstrip("@") for v in value]
        shared = [d for d in domains if d in FREEMAIL_DOMAINS]
        if shared:
            raise ValueError(
                f"domain {shared[0]!r} is a free-mail provider: it would match every one of "
                "its users. List the client's address under addresses instead"
            )
        if any("." not in d or " " in d for d in domains):
            raise ValueError(f"domains {value!r}: write bare domains such as 'acme.example'")
        return domains

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        value = None if value is None else value.strip()
        return value or None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.time_zone is not None or self.country is not None:
            _check_region(self.time_zone or "UTC", self.country)
        return self


def _domain_matches(addr: str, domain: str) -> bool:
    """``domain`` or one of its subdomains (``eu.acme.example`` is ``acme.example``)."""
    return _any_in_domain((addr,), domain)


def _any_in_domain(addrs: Iterable[str], domain: str) -> bool:
    """Whether an address is in ``domain`` or one of its subdomains."""
    subdomain = "." + domain
    for addr in addrs:
        own = domain_of(addr)
        if own == domain or own.endswith(subdomain):
            return True
    return False


def match_client(clients: Sequence[Client], address: str) -> Client | None:
    """The client an address belongs to: an exact address first, then a domain."""
    addr = address.strip().lower()
    for client in clients:
        if addr in client.addresses:
            return client
    for client in clients:
        if any(_domain_matches(addr, d) for d in client.domains):
            return client
    return None


# --- rules ------------------------------------------------------------------------------


class _RuleCriteria(NamedTuple):
    counterpart: str | None  # lower case, as the fields below
    domain: str | None
    client: str | None
    subject: re.Pattern[str] | None
    attachment: str | None
    folder: str | None


class Rule(_Strict):
    """Puts matching threads in a stage. Every criterion given must match; first rule wins.

    ``counterpart`` and ``attachment`` are shell-style globs (case-insensitive),
    ``domain`` matches subdomains too, ``subject`` is a regular expression searched
    case-insensitively, ``client`` a client's name, ``folder`` an IMAP folder name.
    """

    stage: str
    counterpart: str | None = None
    domain: str | None = None
    client: str | None = None
    subject: str | None = None
    attachment: str | None = None
    folder: str | None = None

    @field_validator("counterpart", "attachment")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return None if value is None else value.strip().lower()

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        return None if value is None else value.strip().lower().lstrip("@")

    @model_validator(mode="after")
    def _check(self) -> Self:
        criteria = ("counterpart", "domain", "client", "subject", "attachment", "folder")
        if all(getattr(self, c) is None for c in criteria):
            raise ValueError(
                "a rule needs at least one of " + ", ".join(criteria) + "; to change the stage "
                "of every thread, set defaults.stage instead"
            )
        _ = self.criteria
        return self

    @cached_property
    def subject_pattern(self) -> re.Pattern[str] | None:
        if self.subject is None:
            return None
        try:
            return re.compile(self.subject, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"subject {self.subject!r} is not a valid regex: {exc}") from None

    @cached_property
    def criteria(self) -> _RuleCriteria:
        """The criteria as :meth:`matches` reads them, once per thread of a plan: a
        plain tuple, since a model's attribute costs several times a tuple's."""
        return _RuleCriteria(
            self.counterpart,
            self.domain,
            None if self.client is None else self.client.lower(),
            self.subject_pattern,
            self.attachment,
            None if self.folder is None else self.folder.lower(),
        )

    def matches(
        self,
        *,
        counterparts: Sequence[str],
        client: str | None,
        subject: str,
        attachments: Sequence[str],
        folder: str,
    ) -> bool:
        counterpart, domain, client_name, pattern, attachment, folder_name = self.criteria
        if counterpart is not None or domain is not None:
            addrs = [a.lower() for a in counterparts]
            if counterpart is not None and not any(
                fnmatch.fnmatchcase(a, counterpart) for a in addrs
            ):
                return False
            if domain is not None and not _any_in_domain(addrs, domain):
                return False
        if client_name is not None and (client is None or client.lower() != client_name):
            return False
        if pattern is not None and not pattern.search(subject):
            return False
        if attachment is not None and not any(
            fnmatch.fnmatchcase(name.lower(), attachment) for name in attachments
        ):
            return False
        return folder_name is None or folder_name == folder.lower()

    def describe(self) -> str:
        parts = [
            f"{key} {getattr(self, key)!r}"
            for key in ("counterpart", "domain", "client", "subject", "attachment", "folder")
            if getattr(self, key) is not None
        ]
        return ", ".join(parts)


# --- steps and policies -----------------------------------------------------------------


class Step(_Strict):
    """One follow-up step. See the module docstring for ``after`` and ``anchor``.

    ``after_term`` takes the delay from the client's contract instead of ``after``
    (``"kill_fee_after"``); without that term in the contract the step does not apply.
    ``reminders`` add digest items next to the message (:data:`REMINDERS`).
    """

    name: str = Field(pattern=_NAME)
    after: str | None = None
    after_term: Literal["kill_fee_after"] | None = None
    anchor: Anchor | None = None
    action: Action = "send"
    template: str | None = None
    task: str | None = None
    mode: Mode = "approve"
    firm: bool = False
    attach_invoice: bool = False
    add_late_fee: bool = False
    deadline: str | None = None
    outcome: str | None = None
    allow_short: bool = False
    reminders: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Self:
        where = f"step {self.name!r}"
        if (self.after is None) == (self.after_term is None):
            raise ValueError(f"{where}: set exactly one of after (e.g. '5d') or after_term")
        _ = self.after_offset, self.deadline_offset
        sends = self.action in ("send", "pause")
        if sends and not self.template:
            raise ValueError(f"{where}: action {self.action!r} sends a message: set template")
        if not sends and self.template is not None:
            raise ValueError(f"{where}: action {self.action!r} sends nothing: remove template")
        if self.action == "task" and self.task is None:
            raise ValueError(
                f"{where}: a task step needs task, one of " + ", ".join(sorted(TASK_KINDS))
            )
        if self.task is not None:
            if self.action != "task":
                raise ValueError(f"{where}: task is only for action = 'task'")
            if self.task not in TASK_KINDS:
                raise ValueError(
                    f"{where}: unknown task {self.task!r}; known: " + ", ".join(sorted(TASK_KINDS))
                )
        unknown = [r for r in self.reminders if r not in REMINDERS]
        if unknown:
            raise ValueError(
                f"{where}: unknown reminder {unknown[0]!r}; known: " + ", ".join(sorted(REMINDERS))
            )
        if not sends and (self.attach_invoice or self.add_late_fee or self.deadline):
            raise ValueError(
                f"{where}: attach_invoice, add_late_fee and deadline go with a message "
                "(action 'send' or 'pause')"
            )
        if self.outcome is not None and self.action != "close":
            raise ValueError(f"{where}: outcome is only for action = 'close'")
        self._check_mode(where)
        self._check_deadline(where)
        return self

    def _check_mode(self, where: str) -> None:
        # PLAYBOOK principles: "Anything firm ... goes to the approval queue by default;
        # only gentle nudges may be set to send on their own".
        if self.mode != "auto":
            return
        if self.firm:
            raise ValueError(
                f"{where} is firm (firm = true): firm messages always go to the approval "
                'queue; remove mode = "auto" (only gentle nudges may send on their own)'
            )
        if self.attach_invoice or self.add_late_fee or self.deadline:
            raise ValueError(
                f"{where}: a payment notice (attach_invoice, add_late_fee, deadline) is firm "
                'and goes to the approval queue; remove mode = "auto"'
            )
        if self.action in ("pause", "task"):
            raise ValueError(
                f"{where}: mode = 'auto' is for gentle nudges; a {self.action} step always "
                "needs you"
            )

    def _check_deadline(self, where: str) -> None:
        # PLAYBOOK stage 3: the final notice's deadline is "anywhere from 5 business days
        # to 30 calendar days".
        offset = self.deadline_offset
        if offset is None:
            return
        ok = (offset.kind is OffsetKind.BUSINESS_DAYS and 5 <= offset.amount <= 20) or (
            offset.kind is OffsetKind.DURATION and offset.calendar_days and 7 <= offset.amount <= 30
        )
        if not ok:
            raise ValueError(
                f"{where}: deadline {self.deadline!r} is outside the playbook's range: "
                "5 to 20 business days, or 7 to 30 calendar days ('10 business days', '30d')"
            )

    @cached_property
    def after_offset(self) -> Offset | None:
        """The parsed ``after`` (None when the delay comes from the contract)."""
        return _offset(self.after, f"step {self.name!r}: after")

    @cached_property
    def deadline_offset(self) -> Offset | None:
        return _offset(self.deadline, f"step {self.name!r}: deadline")

    @property
    def sends_message(self) -> bool:
        return self.action in ("send", "pause")


class Policy(_Strict):
    """The steps for one stage, in order."""

    name: str = Field(pattern=_NAME)
    stage: StageKind
    steps: list[Step] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _default_anchors(cls, data: Any) -> Any:
        # The first step counts from your last message, later ones from the step before.
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            return data
        steps: list[Any] = []
        for i, given in enumerate(data["steps"]):
            default = "last_outgoing" if i == 0 else "previous"
            step = given
            if isinstance(given, dict) and given.get("anchor") is None:
                step = {**given, "anchor": default}
            elif isinstance(given, Step) and given.anchor is None:
                # Rebuilt, not model_copy'd: a copy would carry the cached parsed fields.
                step = {**given.model_dump(exclude_unset=True), "anchor": default}
            steps.append(step)
        return {**data, "steps": steps}

    @model_validator(mode="after")
    def _check(self) -> Self:
        seen: set[str] = set()
        for i, step in enumerate(self.steps):
            where = f"policy {self.name!r}, step {step.name!r}"
            if step.name in seen:
                raise ValueError(f"{where}: step names must be unique within a policy")
            seen.add(step.name)
            if step.anchor == "previous" and i == 0:
                raise ValueError(f"{where}: the first step has no previous step to count from")
            if step.anchor == "due_date" and self.stage != "payment":
                raise ValueError(
                    f"{where}: anchor 'due_date' needs an invoice, so only a payment-stage "
                    f"policy may use it (this one is {self.stage!r})"
                )
            self._check_floor(where, step)
        if self.stage == "ignore" and self.steps:
            raise ValueError(f"policy {self.name!r}: an ignore policy never follows up: no steps")
        return self

    def _check_floor(self, where: str, step: Step) -> None:
        # PLAYBOOK stage 1: "Anything under 4 days reads as pushy or desperate: the config
        # validator warns (or refuses, with an explicit override)".
        offset = step.after_offset
        if self.stage != "prospect" or offset is None or step.allow_short:
            return
        shortest = offset.minimum_days()
        if shortest < PROSPECT_FLOOR_DAYS:
            raise ValueError(
                f"{where}: after = {step.after!r} can come {shortest:g} days after its anchor; "
                f"in the prospect stage under {PROSPECT_FLOOR_DAYS} days reads as pushy; "
                "set allow_short = true to override"
            )


# --- the policy settings ----------------------------------------------------------------


class PaymentNotices(_Strict):
    """Mail that says an invoice was paid (a bank, PayPal, Stripe, your accountant).

    A message from one of ``senders`` (addresses or shell-style globs) whose subject
    matches one of ``subject_patterns`` (regular expressions; any subject when there
    are none) and mentions the invoice number stops that invoice's payment steps.
    """

    senders: list[str] = Field(default_factory=list)
    subject_patterns: list[str] = Field(default_factory=list)

    @field_validator("senders")
    @classmethod
    def _senders(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value if v.strip()]

    @field_validator("subject_patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"subject pattern {pattern!r}: {exc}") from exc
        return value

    def matches(self, sender: str, subject: str, invoice_number: str) -> bool:
        if not self.senders or invoice_number not in subject:
            return False
        if not any(fnmatch.fnmatchcase(sender.lower(), s) for s in self.senders):
            return False
        return not self.subject_patterns or any(
            re.search(p, subject) for p in self.subject_patterns
        )


class PolicySettings(_Strict):
    """The policy part of the config file.

    ``policies`` is merged over :data:`DEFAULT_POLICIES` by name: a policy you define
    replaces the shipped one of that name, the others stay. Under ``[policies.NAME]``,
    ``name`` defaults to NAME, and ``stage`` too when NAME is a stage.
    """

    defaults: Defaults = Field(default_factory=Defaults)
    clients: list[Client] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    policies: dict[str, Policy] = Field(default_factory=lambda: dict(DEFAULT_POLICIES))
    payment_notices: PaymentNotices = Field(default_factory=PaymentNotices)

    @model_validator(mode="before")
    @classmethod
    def _merge_policies(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("policies"), dict):
            return data
        merged: dict[str, Any] = dict(DEFAULT_POLICIES)
        for key, given in data["policies"].items():
            value = given
            if isinstance(given, dict):
                value = {"name": key, **given}
                if key in STAGES:
                    value.setdefault("stage", key)
            merged[key] = value
        return {**data, "policies": merged}

    @model_validator(mode="after")
    def _check(self) -> Self:
        for key, policy in self.policies.items():
            if policy.name != key:
                raise ValueError(f"policies.{key}: name {policy.name!r} must equal the key {key!r}")
        known = ", ".join(sorted(self.policies))
        used = [("defaults.stage", self.defaults.stage)]
        used += [(f"rules[{i}].stage", r.stage) for i, r in enumerate(self.rules)]
        used += [(f"client {c.name!r} stage", c.stage) for c in self.clients if c.stage]
        for where, stage in used:
            if stage not in self.policies:
                raise ValueError(f"{where}: no policy named {stage!r} (known: {known})")
        names: set[str] = set()
        for client in self.clients:
            if client.name.lower() in names:
                raise ValueError(f"client name {client.name!r} is used twice")
            names.add(client.name.lower())
        owner: dict[str, Client] = {}
        for client in self.clients:
            for addr in client.addresses:
                other = owner.setdefault(addr, client)
                if other is not client:
                    raise ValueError(
                        f"{addr} is listed for clients {other.name!r} and {client.name!r}"
                    )
        return self

    @cached_property
    def client_index(self) -> tuple[Mapping[str, Client], Mapping[str, Client]]:
        """(address -> client, domain -> client); for a domain the first client listing it."""
        by_address: dict[str, Client] = {}
        by_domain: dict[str, Client] = {}
        for client in self.clients:
            for addr in client.addresses:
                by_address.setdefault(addr, client)
            for domain in client.domains:
                by_domain.setdefault(domain, client)
        return MappingProxyType(by_address), MappingProxyType(by_domain)

    def client_for(self, addresses: Iterable[str]) -> Client | None:
        """The client of the first address that belongs to one (exact, then by domain)."""
        by_address, by_domain = self.client_index
        addrs = [a.strip().lower() for a in addresses]
        for addr in addrs:
            if addr in by_address:
                return by_address[addr]
        for addr in addrs:
            domain = domain_of(addr)
            while domain:
                if domain in by_domain:
                    return by_domain[domain]
                domain = domain.partition(".")[2]
        return None

    @classmethod
    def from_toml(cls, text: str) -> PolicySettings:
        """Parse the policy tables of a TOML document (other tables are ignored)."""
        data = tomllib.loads(text)
        keys = ("defaults", "clients", "rules", "policies")
        return cls.model_validate({k: v for k, v in data.items() if k in keys})


# --- the shipped defaults (PLAYBOOK stages 1-3) -----------------------------------------

DEFAULT_POLICIES_TOML = """\
# Follow-up policies, one per stage. Steps run in order, each at most once per silence.
# `after` counts from `anchor`: the first step from your last message ("last_outgoing"),
# later steps from the previous step ("previous"); payment notices from the invoice's
# due date ("due_date"). The result is moved into the client's send window.
# Firm steps always wait for your approval; add mode = "auto" to a gentle nudge to let
# it go out on its own.

[policies.prospect]
stage = "prospect"

[[policies.prospect.steps]]
name = "nudge"
after = "5 business days"          # 4 to 7 days; under 4 days reads as pushy
template = "prospect_nudge"

[[policies.prospect.steps]]
name = "last_check_in"
after = "7d"
template = "prospect_last_check_in"  # says it is the last check-in
firm = true

[[policies.prospect.steps]]
name = "close"
after = "7d"
action = "close"
outcome = "moved on"
mode = "auto"                      # sends nothing: just stops following up

[policies.project]
stage = "project"

[[policies.project.steps]]
name = "nudge"
after = "tuesday of the following week"
template = "project_nudge"

[[policies.project.steps]]
name = "investigate"
after = "7d"
action = "task"
task = "investigate"               # compare addresses, call, check activity elsewhere

[[policies.project.steps]]
name = "work_paused"
after = "5 business days"
action = "pause"                   # tells the client work is on hold, marks it paused
template = "work_paused"
firm = true

[[policies.project.steps]]
name = "kill_fee"
after_term = "kill_fee_after"      # only for clients whose contract has kill_fee_after
anchor = "first_unanswered"
template = "kill_fee_notice"
firm = true
reminders = ["invoice_work_done"]

[policies.payment]
stage = "payment"

[[policies.payment.steps]]
name = "deliverables_check"
after = "5 business days"
template = "payment_deliverables_check"

[[policies.payment.steps]]
name = "resend_with_late_fee"
after = "7d"
template = "invoice_resend"
attach_invoice = true
add_late_fee = true
firm = true
reminders = ["certified_mail", "call_to_confirm"]

[[policies.payment.steps]]
name = "notice_30"
after = "30d"
anchor = "due_date"
template = "payment_notice"
attach_invoice = true
firm = true

[[policies.payment.steps]]
name = "notice_60"
after = "60d"
anchor = "due_date"
template = "payment_notice"
attach_invoice = true
firm = true

[[policies.payment.steps]]
name = "notice_90"
after = "90d"
anchor = "due_date"
template = "payment_notice"
attach_invoice = true
firm = true

[[policies.payment.steps]]
name = "final_notice"
after = "97d"
anchor = "due_date"
template = "final_notice"
deadline = "10 business days"      # 5 business days to 30 calendar days
attach_invoice = true
firm = true

[[policies.payment.steps]]
name = "small_claims"
after = "10 business days"         # once the final notice's deadline has passed
action = "task"
task = "small_claims"

[policies.ignore]
stage = "ignore"
"""


def _default_policies() -> Mapping[str, Policy]:
    def notice(days: int) -> Step:
        return Step(
            name=f"notice_{days}",
            after=f"{days}d",
            anchor="due_date",
            template="payment_notice",
            attach_invoice=True,
            firm=True,
        )

    policies = [
        Policy(
            name="prospect",
            stage="prospect",
            steps=[
                Step(name="nudge", after="5 business days", template="prospect_nudge"),
                Step(
                    name="last_check_in", after="7d", template="prospect_last_check_in", firm=True
                ),
                Step(name="close", after="7d", action="close", outcome="moved on", mode="auto"),
            ],
        ),
        Policy(
            name="project",
            stage="project",
            steps=[
                Step(name="nudge", after="tuesday of the following week", template="project_nudge"),
                Step(name="investigate", after="7d", action="task", task="investigate"),
                Step(
                    name="work_paused",
                    after="5 business days",
                    action="pause",
                    template="work_paused",
                    firm=True,
                ),
                Step(
                    name="kill_fee",
                    after_term="kill_fee_after",
                    anchor="first_unanswered",
                    template="kill_fee_notice",
                    firm=True,
                    reminders=["invoice_work_done"],
                ),
            ],
        ),
        Policy(
            name="payment",
            stage="payment",
            steps=[
                Step(
                    name="deliverables_check",
                    after="5 business days",
                    template="payment_deliverables_check",
                ),
                Step(
                    name="resend_with_late_fee",
                    after="7d",
                    template="invoice_resend",
                    attach_invoice=True,
                    add_late_fee=True,
                    firm=True,
                    reminders=["certified_mail", "call_to_confirm"],
                ),
                notice(30),
                notice(60),
                notice(90),
                Step(
                    name="final_notice",
                    after="97d",
                    anchor="due_date",
                    template="final_notice",
                    deadline="10 business days",
                    attach_invoice=True,
                    firm=True,
                ),
                Step(
                    name="small_claims",
                    after="10 business days",
                    action="task",
                    task="small_claims",
                ),
            ],
        ),
        Policy(name="ignore", stage="ignore"),
    ]
    return MappingProxyType({p.name: p for p in policies})


#: The shipped policies, one per stage; :data:`DEFAULT_POLICIES_TOML` spells the same.
DEFAULT_POLICIES: Mapping[str, Policy] = _default_policies()
