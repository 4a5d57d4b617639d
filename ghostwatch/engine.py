"""The policy engine: which follow-up step is next for a thread, when, and why.

Pure: a function of (thread facts, policy settings, ``now``). No clock, no I/O, no
database; the daemon gathers :class:`ThreadFacts`, calls :func:`plan`, and performs
what comes back. :func:`explain` describes the same decision in words, so ``plan``,
``explain``, the digest and ``--dry-run`` never disagree.

At most one step per thread is planned: the first policy step after the last one done.
Its due time is ``cal.next_window_open(offset.apply(anchor, cal))`` in the client's
calendar, then pushed later (never earlier) by an out-of-office return date, a snooze,
the one-week gap between messages, and ``now`` itself: a step is never due before the
next send-window opening, so every ``due_at`` is a moment a message may go out.

Explanation statuses: ``answered`` / ``not_chased`` (the verdict is not awaiting),
``stopped``, ``unknown_stage``, ``ignored``, ``paid``, ``closed``, ``halted`` (bounce),
``needs_invoice``, ``finished`` / ``paused`` (no step left), and for a planned step
``due``, ``scheduled``, ``out_of_office`` or ``snoozed``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from ghostwatch.absence import ReturnDate, find_return_date
from ghostwatch.businesstime import Calendar, Offset, OffsetKind, parse_offset
from ghostwatch.checklists import ChecklistContext, bounce_items, checklist, mismatch_items
from ghostwatch.facts import AutoReply, Explanation, Invoice, PlannedStep, StepRecord, ThreadFacts
from ghostwatch.history import describe_late_payments, describe_latency
from ghostwatch.judgment import ThreadState, Verdict, domain_of
from ghostwatch.policy import Client, Contract, Defaults, Policy, PolicySettings, Step
from ghostwatch.records import builder

__all__ = [
    "DONE_OUTCOMES",
    "AutoReply",
    "Explanation",
    "Invoice",
    "PlannedStep",
    "StepRecord",
    "ThreadFacts",
    "calendar_for",
    "compute_late_fee",
    "explain",
    "next_step",
    "plan",
    "resolve_stage",
]

#: StepRecord outcomes that mean the step happened (or was deliberately passed over).
DONE_OUTCOMES = frozenset({"sent", "done", "skipped"})

# PLAYBOOK: "A duplicate nudge costs more than a late one." Steps counted from the due
# date or the first unanswered message could otherwise land on the day after another
# message; they wait at least a week after your last one.
_MESSAGE_GAP = parse_offset("7d")
_CENT = Decimal("0.01")
# A plan builds a step for most threads, and a checklist for many: see
# ghostwatch.records for what this spares.
_new_step = builder(PlannedStep)
_new_checklist_context = builder(ChecklistContext)


# --- public API -------------------------------------------------------------------------


def resolve_stage(facts: ThreadFacts, settings: PolicySettings) -> tuple[str, str]:
    """(stage, why): explicit (track) > first matching rule > client's stage > default.

    No-reply senders, newsletters and colleagues never get this far: judgment does not
    mark their threads as awaiting a reply.
    """
    addrs = _counterparts(facts.verdict)
    ctx = _Context(settings, None)
    return _resolve_stage(facts, ctx, ctx.client(facts, addrs), addrs)


def calendar_for(facts: ThreadFacts, settings: PolicySettings) -> Calendar:
    """The client's calendar: their zone and country, else the defaults'."""
    ctx = _Context(settings, None)
    return ctx.calendar(ctx.client(facts, _counterparts(facts.verdict)))


def next_step(facts: ThreadFacts, settings: PolicySettings, now: datetime) -> PlannedStep | None:
    """The thread's next step, or None (see :func:`explain` for why)."""
    return _decide(facts, _Context(settings, now), verbose=False).step


def explain(facts: ThreadFacts, settings: PolicySettings, now: datetime) -> Explanation:
    """Why a step is or is not due, in a few human lines (first line: the verdict)."""
    decision = _decide(facts, _Context(settings, now), verbose=True)
    lines = list(decision.lines)
    latency = describe_latency(facts.reply_latencies, settings.defaults.slow_client_days)
    late = describe_late_payments(facts.days_late_history)
    lines += [line for line in (latency, late) if line]
    return Explanation(
        facts.thread_id, decision.stage, decision.status, tuple(lines), decision.step
    )


def plan(
    threads: Iterable[ThreadFacts],
    settings: PolicySettings,
    now: datetime,
    *,
    until: datetime | None = None,
) -> list[PlannedStep]:
    """The next step of every thread (at most one each), by due time then thread id.

    With ``until``, only steps due at or before it. A thread id given twice is an error.
    """
    ctx = _Context(settings, now)
    limit = None if until is None else _utc(until)
    seen: set[str] = set()
    steps: list[PlannedStep] = []
    # Sort keys hold no step: tuples of atoms, which the garbage collector stops
    # tracking at once (a plan's other survivors, its steps, are what it returns).
    keys: list[tuple[datetime, str, int]] = []
    awaiting = ThreadState.AWAITING_REPLY
    for facts in threads:
        thread_id = facts.thread_id
        if thread_id in seen:
            raise ValueError(f"thread {thread_id!r} given twice to plan()")
        seen.add(thread_id)
        verdict = facts.verdict
        if verdict.state is not awaiting or verdict.awaiting_since is None:
            continue  # no step (see _decide), and nothing to explain here
        if facts.stopped is not None:
            continue
        decision = _decide_awaiting(facts, ctx, verbose=False)
        step = decision.step
        if step is None:
            continue
        due_utc = decision.due_utc
        if due_utc is None:
            due_utc = _utc(step.due_at)
        if limit is None or due_utc <= limit:
            keys.append((due_utc, thread_id, len(steps)))
            steps.append(step)
    keys.sort()  # by due time then thread id
    return [steps[i] for _, _, i in keys]


def compute_late_fee(amount: Decimal, contract: Contract | None) -> Decimal | None:
    """The contract's fixed late fee plus its percentage of ``amount``, to the cent."""
    # PLAYBOOK stage 3: "re-send the invoice with the late fee added".
    if contract is None:
        return None
    fee = contract.late_fee_amount + amount * contract.late_fee_percent / 100
    return fee.quantize(_CENT, rounding=ROUND_HALF_UP) if fee > 0 else None


# --- helpers ----------------------------------------------------------------------------


def _utc(t: datetime) -> datetime:
    # Two datetimes of one zone compare by wall time and ignore fold; UTC never lies.
    return t if t.tzinfo is UTC else t.astimezone(UTC)


def _later(a: datetime, b: datetime) -> datetime:
    return b if _utc(b) > _utc(a) else a


def _require_aware(t: datetime, what: str) -> None:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what} {t.isoformat()} is naive: ghostwatch needs timezone-aware times")


def _counterparts(verdict: Verdict) -> tuple[str, ...]:
    others, counterpart = verdict.counterparts, verdict.counterpart
    if len(others) == 1 and (others[0] == counterpart or not counterpart):
        return (others[0].lower(),)  # the usual thread: one counterpart
    addrs = [*others, *([counterpart] if counterpart else [])]
    return tuple(dict.fromkeys([a.lower() for a in addrs]))


class _Context:
    """What every thread of one ``plan`` call shares: settings, ``now``, and lookups
    that do not depend on the thread (client by address, calendar by client, the next
    window opening after ``now`` by calendar)."""

    def __init__(self, settings: PolicySettings, now: datetime | None) -> None:
        if now is not None:
            _require_aware(now, "now")
        self.settings = settings
        # Read for every thread: plain attributes (see _StepView).
        self.defaults = settings.defaults
        self.rules = tuple(enumerate(settings.rules, start=1))
        self.policies = settings.policies
        self.clients_by_address = settings.client_index[0]
        self.now = now
        self.now_utc = None if now is None else _utc(now)
        self._clients: dict[tuple[str, ...], Client | None] = {}
        self._clients_by_domain: dict[str, Client | None] = {}
        self._calendars: dict[int, Calendar] = {}
        self._openings: dict[int, tuple[datetime, datetime]] = {}
        self._profiles: dict[tuple[int, int], _Profile] = {}
        self._due_dates: dict[int, dict[tuple[int, date], datetime]] = {}
        # Text of dates, by the current year (written without it): many threads share
        # their window openings.
        self._day_texts: dict[int, dict[date, str]] = {}
        self._years: dict[ZoneInfo, int] = {}

    def client(self, facts: ThreadFacts, addrs: tuple[str, ...]) -> Client | None:
        if not addrs and facts.counterpart_last_wrote_from:
            addrs = (facts.counterpart_last_wrote_from,)
        if len(addrs) == 1:  # the usual case: the address, else its domain (memoised)
            addr = addrs[0].strip().lower()
            client = self.clients_by_address.get(addr)
            if client is not None:
                return client
            by_domain = self._clients_by_domain
            domain = domain_of(addr)
            if domain not in by_domain:
                by_domain[domain] = self.settings.client_for((addr,))
            return by_domain[domain]
        if addrs not in self._clients:
            self._clients[addrs] = self.settings.client_for(addrs)
        return self._clients[addrs]

    def calendar(self, client: Client | None) -> Calendar:
        key = id(client)  # clients live in self.settings for as long as this context
        cal = self._calendars.get(key)
        if cal is None:
            cal = self._calendars[key] = _calendar(self.defaults, client)
        return cal

    def opening_after_now(self, cal: Calendar) -> tuple[datetime, datetime]:
        """The calendar's next window opening at or after ``now``, and it in UTC."""
        assert self.now is not None  # noqa: S101 - planning contexts always have one
        opening = self._openings.get(id(cal))
        if opening is None:
            local = cal.next_window_open(self.now)
            opening = self._openings[id(cal)] = (local, _utc(local))
        return opening

    def year(self, zone: ZoneInfo) -> int:
        """The current year in ``zone`` (dates in it are written without one)."""
        assert self.now is not None  # noqa: S101 - planning contexts always have one
        year = self._years.get(zone)
        if year is None:
            year = self._years[zone] = self.now.astimezone(zone).year
        return year

    def day_texts(self, year: int) -> dict[date, str]:
        """Texts of dates (see :meth:`_Planner.day`) when the current year is ``year``."""
        texts = self._day_texts.get(year)
        if texts is None:
            texts = self._day_texts[year] = {}
        return texts

    def due_dates(self, cal: Calendar) -> dict[tuple[int, date], datetime]:
        """The memo of :meth:`_Profile.after_due_date` for ``cal``."""
        memo = self._due_dates.get(id(cal))
        if memo is None:
            memo = self._due_dates[id(cal)] = {}
        return memo

    def profile(self, policy: Policy, client: Client | None) -> _Profile:
        """What every thread of ``policy`` with ``client`` shares (see :class:`_Profile`)."""
        key = (id(policy), id(client))  # both live in self.settings as long as this context
        profile = self._profiles.get(key)
        if profile is None:
            profile = self._profiles[key] = _Profile(self, policy, client)
        return profile


@dataclass(frozen=True, slots=True)
class _StepView:
    """A policy step's fields as the planner reads them, many times per thread: a
    pydantic model's attribute costs several times a slot's (its ``__getattr__`` hook
    keeps Python from specialising the lookup)."""

    name: str
    anchor: str | None
    action: str
    template: str | None
    task: str | None
    mode: str
    attach_invoice: bool
    add_late_fee: bool
    sends_message: bool
    deadline_offset: Offset | None
    reminders: tuple[str, ...]
    outcome: str | None
    after_term: str | None

    @classmethod
    def of(cls, step: Step) -> _StepView:
        return cls(
            step.name,
            step.anchor,
            step.action,
            step.template,
            step.task,
            step.mode,
            step.attach_invoice,
            step.add_late_fee,
            step.sends_message,
            step.deadline_offset,
            tuple(step.reminders),
            step.outcome,
            step.after_term,
        )


class _Profile:
    """The thread-independent part of planning one policy for one client: its calendar,
    each step's offset (from the contract for ``after_term``), and texts."""

    __slots__ = (
        "cal",
        "client",
        "close_steps",
        "contract",
        "day_texts",
        "due_dates",
        "index",
        "labels",
        "offset_texts",
        "offsets",
        "stage",
        "steps",
        "year",
        "zone",
    )

    def __init__(self, ctx: _Context, policy: Policy, client: Client | None) -> None:
        self.stage = policy.name
        self.steps = steps = tuple(_StepView.of(step) for step in policy.steps)
        self.client = client
        self.contract = contract = client.contract if client else None
        self.cal = ctx.calendar(client)
        self.zone = self.cal.zone()
        self.year = ctx.year(self.zone)
        self.day_texts = ctx.day_texts(self.year)
        self.offsets = tuple(
            step.after_offset
            if step.after_offset is not None
            else (contract.kill_fee_offset if contract else None)
            for step in policy.steps
        )
        self.offset_texts = tuple(
            None if offset is None else _describe_offset(offset) for offset in self.offsets
        )
        self.labels = tuple(
            f"{self.stage} step {i + 1} of {len(steps)} ({step.name})"
            for i, step in enumerate(steps)
        )
        self.index = {step.name: i for i, step in enumerate(steps)}
        self.close_steps = tuple(step for step in steps if step.action == "close")
        # Shared by the profiles of one calendar: clients share calendars, invoices
        # their due dates, policies their offsets.
        self.due_dates = ctx.due_dates(self.cal)

    def after_due_date(self, index: int, due: date) -> datetime:
        """Step ``index``'s offset applied to an invoice due on ``due`` (at the window
        start), in UTC."""
        offset = self.offsets[index]
        assert offset is not None  # noqa: S101 - the caller checks
        key = (id(offset), due)  # offsets live in the settings as long as the context
        at = self.due_dates.get(key)
        if at is None:
            at = self.due_dates[key] = _utc(offset.apply(self.due_anchor(due), self.cal))
        return at

    def due_anchor(self, due: date) -> datetime:
        """The anchor of steps counted from an invoice due on ``due``."""
        return datetime.combine(due, self.cal.window_start, tzinfo=self.zone)


def _resolve_stage(
    facts: ThreadFacts, ctx: _Context, client: Client | None, addrs: tuple[str, ...]
) -> tuple[str, str]:
    if facts.stage is not None:
        return facts.stage, "set by you with ghostwatch track"
    for i, rule in ctx.rules:
        if rule.matches(
            counterparts=addrs,
            client=client.name if client else None,
            subject=facts.subject or facts.verdict.subject,
            attachments=facts.attachments,
            folder=facts.folder,
        ):
            return rule.stage, f"rule {i}: {rule.describe()}"
    if client is not None and client.stage is not None:
        return client.stage, f"client {client.name}'s stage"
    return ctx.defaults.stage, "the default stage"


def _calendar(defaults: Defaults, client: Client | None) -> Calendar:
    tz, country = defaults.time_zone, defaults.country
    if client is not None and client.time_zone is not None:
        # A client in another zone does not inherit your country's holidays.
        tz, country = client.time_zone, client.country
    elif client is not None and client.country is not None:
        country = client.country
    w = defaults.send_window
    return _cached_calendar(tz, country, w.start_time(), w.end_time(), w.workdays())


@functools.lru_cache(maxsize=1024)
def _cached_calendar(
    tz: str, country: str | None, start: time, end: time, workdays: frozenset[int]
) -> Calendar:
    return Calendar(tz=tz, country=country, window_start=start, window_end=end, workdays=workdays)


@functools.lru_cache(maxsize=4096)
def _return_date(subject: str, body: str, sent_day: date) -> ReturnDate | None:
    # find_return_date reads only the auto-reply's calendar day, so the day is the key.
    return find_return_date(subject, body, datetime.combine(sent_day, time(12), tzinfo=UTC))


@functools.lru_cache(maxsize=256)
def _describe_offset(offset: Offset) -> str:
    return offset.describe()


_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _why_not_awaiting(verdict: Verdict) -> str:
    if verdict.state in (ThreadState.ANSWERED, ThreadState.ANSWERED_ELSEWHERE) and verdict.notes:
        return verdict.notes[-1]
    return {
        ThreadState.ANSWERED: "answered",
        ThreadState.ANSWERED_ELSEWHERE: "they wrote in another thread",
        ThreadState.OWED_BY_USER: "the last word is theirs: you owe the reply",
        ThreadState.INTERNAL: "only your own organisation is involved",
        ThreadState.AUTOMATED_ONLY: "only automated mail (newsletters, notifications, bounces)",
        ThreadState.NOTE_TO_SELF: "a note to yourself",
    }.get(verdict.state, "no unanswered message of yours")


class _Decision(NamedTuple):
    status: str
    lines: tuple[str, ...]
    step: PlannedStep | None = None
    stage: str | None = None
    due_utc: datetime | None = None  # step.due_at in UTC, where the planner had it


def _decide(facts: ThreadFacts, ctx: _Context, *, verbose: bool) -> _Decision:
    """The one decision behind ``plan``, ``next_step`` and ``explain``; ``verbose``
    also writes the explanation lines (``plan`` only needs the step and its reason)."""
    verdict = facts.verdict
    # PLAYBOOK principle: "Never nudge someone who has answered. A reply in the thread,
    # from the client's other address, or from a colleague at the client cancels pending
    # steps." Judgment decides that; anything not awaiting gets nothing.
    if not verdict.awaiting or verdict.awaiting_since is None:
        answered = verdict.state in (ThreadState.ANSWERED, ThreadState.ANSWERED_ELSEWHERE)
        return _Decision(
            "answered" if answered else "not_chased",
            (f"not chased: {_why_not_awaiting(verdict)}",),
        )
    if facts.stopped is not None:
        return _Decision("stopped", (f"stopped by you: {facts.stopped}",))
    return _decide_awaiting(facts, ctx, verbose=verbose)


def _decide_awaiting(facts: ThreadFacts, ctx: _Context, *, verbose: bool) -> _Decision:
    """:func:`_decide` for a thread awaiting a reply and not stopped."""
    settings = ctx.settings
    verdict = facts.verdict
    addrs = _counterparts(verdict)
    client = ctx.client(facts, addrs)
    stage, why = _resolve_stage(facts, ctx, client, addrs)
    policy = ctx.policies.get(stage)
    if policy is None:
        known = ", ".join(sorted(settings.policies))
        return _Decision(
            "unknown_stage",
            (f"not chased: stage {stage!r} ({why}) has no policy (known: {known})",),
        )
    planner = _Planner(ctx, facts, ctx.profile(policy, client), (why, addrs), verbose=verbose)
    return planner.decide()


# --- the planner for one thread ---------------------------------------------------------


class _Planner:
    """The decision for one thread; split into methods only to keep each rule readable."""

    __slots__ = (
        "cal",
        "client",
        "contract",
        "counterparts",
        "ctx",
        "defaults",
        "done",
        "facts",
        "last_outgoing",
        "now",
        "now_utc",
        "profile",
        "snoozed",
        "stage",
        "steps",
        "verbose",
        "verdict",
        "why",
        "zone",
    )

    def __init__(
        self,
        ctx: _Context,
        facts: ThreadFacts,
        profile: _Profile,
        why_and_addrs: tuple[str, tuple[str, ...]],
        *,
        verbose: bool,
    ) -> None:
        assert ctx.now is not None  # noqa: S101 - planning contexts always have one
        assert facts.verdict.awaiting_since is not None  # noqa: S101 - checked by _decide
        self.ctx = ctx
        self.facts = facts
        self.verdict = facts.verdict
        self.why, self.counterparts = why_and_addrs
        self.last_outgoing: datetime = facts.verdict.awaiting_since
        self.defaults = ctx.defaults
        assert ctx.now_utc is not None  # noqa: S101 - set with now
        self.now: datetime = ctx.now
        self.now_utc: datetime = ctx.now_utc
        self.profile = profile
        self.stage = profile.stage
        self.steps = profile.steps
        self.client = profile.client
        self.contract = profile.contract
        self.cal = profile.cal
        self.zone = profile.zone
        self.verbose = verbose
        self.done: dict[str, StepRecord] = {}
        # The steps with a snooze of their own ("snoozed:<iso>", see _snoozes).
        self.snoozed: frozenset[str] | set[str] = frozenset()
        for record in facts.steps_done:
            if record.outcome in DONE_OUTCOMES:
                previous = self.done.get(record.step)
                if previous is None or _utc(record.at) > _utc(previous.at):
                    self.done[record.step] = record
            elif record.outcome.startswith("snoozed:"):
                self.snoozed = {*self.snoozed, record.step}

    # Formatting (dates in the client's zone).

    def day(self, t: date | datetime) -> str:
        d = t.astimezone(self.zone).date() if isinstance(t, datetime) else t
        texts = self.profile.day_texts
        text = texts.get(d)
        if text is None:
            text = f"{_DAY_NAMES[d.weekday()]} {d.day} {_MONTHS[d.month - 1]}"
            if d.year != self.profile.year:
                text = f"{text} {d.year}"
            texts[d] = text
        return text

    def when(self, t: datetime) -> str:
        local = t.astimezone(self.zone)
        return f"{self.day(local.date())} {local.hour:02d}:{local.minute:02d}"

    def who(self) -> str:
        return self.client.name if self.client else (self.verdict.counterpart or "the client")

    @property
    def stage_line(self) -> str:
        return f"stage: {self.stage} ({self.why})"

    def result(self, status: str, *lines: str, step: PlannedStep | None = None) -> _Decision:
        return _Decision(status, lines, step, self.stage)

    # The rules, in order of precedence.

    def decide(self) -> _Decision:
        facts, steps = self.facts, self.steps
        if not steps:
            return self.result(
                "ignored", f"not chased: stage {self.stage} has no steps", self.stage_line
            )
        # PLAYBOOK stage 3: "Once paid: stop everything for that invoice."
        paid_at = (facts.invoice.paid_at if facts.invoice else None) or facts.payment_seen_at
        if paid_at is not None:
            return self.result("paid", f"paid on {self.day(paid_at)}: payment steps stopped")
        # PLAYBOOK stage 1: "After the last check-in: stop. The thread is closed".
        for step in self.profile.close_steps:
            if step.name in self.done:
                outcome = step.outcome or "closed"
                return self.result(
                    "closed", f"closed: {outcome} ({self.day(self.done[step.name].at)})"
                )
        bounced = self._bounce()
        if bounced is not None:
            return bounced
        chosen = self._next_policy_step()
        if chosen is None:
            return self._finished()
        index, step, passed = chosen
        if self._needs_invoice(step) and facts.invoice is None:
            return self.result(
                "needs_invoice",
                f"{self.stage} step {step.name} needs an invoice: run ghostwatch track "
                f"{facts.thread_id} --invoice ...",
                self.stage_line,
            )
        return self._plan_step(index, step, passed)

    def _bounce(self) -> _Decision | None:
        # PLAYBOOK principle: "a bounce is not an answer"; it changes the plan: check the
        # address. Nothing is sent to an address that bounced.
        if not self.facts.bounced_addresses:
            return None
        counterparts = set(self.counterparts)
        bounced = [a for a in self.facts.bounced_addresses if a.lower() in counterparts]
        if not bounced:
            return None
        failed = {a.lower() for a in bounced}
        others = [a for a in self.facts.known_addresses if a.lower() not in failed]
        other_text = f"other known: {', '.join(others)}" if others else "no other address on file"
        headline = (
            f"stopped: bounced ({', '.join(bounced)}); task: check the address ({other_text})"
        )
        record = self.done.get("check_address")
        if record is not None:
            return self.result(
                "halted",
                headline,
                f"you checked the address on {self.day(record.at)}: write to a working address "
                "to resume",
            )
        step = self._planned(
            name="check_address",
            index=-1,
            action="task",
            due=self._task_due("check_address"),
            reason=f"{', '.join(bounced)} bounced; a bounce is not an answer: check the address",
            task="check_address",
            checklist=bounce_items(self._checklist_context(), bounced),
        )
        return self.result("halted", headline, f"due {self.when(step.due_at)}", step=step)

    def _offset(self, step: _StepView) -> Offset | None:
        return self.profile.offsets[self.profile.index[step.name]]

    def _next_policy_step(self) -> tuple[int, _StepView, tuple[str, ...]] | None:
        """The first applicable step after the last one done, and the steps passed over.

        PLAYBOOK principle: "Never send the same step twice." Counting from the last
        step done (not the first missing one) also means the plan never goes back.
        """
        steps, offsets = self.steps, self.profile.offsets
        i = self._after_last_done()
        passed: list[str] = []
        while i < len(steps):
            step = steps[i]
            if offsets[i] is None:
                passed.append(f"{step.name} does not apply: no {step.after_term} in the contract")
                i += 1
                continue
            later = self._superseded_by(i)
            if later is not None:
                passed.append(f"skipped {step.name}: {steps[later].name} is already due")
                i = later
                continue
            return i, step, tuple(passed)
        return None

    def _after_last_done(self) -> int:
        """The index after the last policy step done (0 when none is)."""
        index = self.profile.index
        after = 0
        for name in self.done:
            i = index.get(name)
            if i is not None and i >= after:
                after = i + 1
        return after

    def _superseded_by(self, i: int) -> int | None:
        # PLAYBOOK stage 3 sends notices at "30, 60 and/or 90 days": when the invoice is
        # already past the next notice's date, the earlier one is skipped, not sent late.
        steps, invoice = self.steps, self.facts.invoice
        if invoice is None or steps[i].anchor != "due_date" or not steps[i].sends_message:
            return None
        j = i + 1
        if j >= len(steps) or steps[j].anchor != "due_date" or not steps[j].sends_message:
            return None
        if self.profile.offsets[j] is None:
            return None
        return j if self.profile.after_due_date(j, invoice.due) <= self.now_utc else None

    @staticmethod
    def _needs_invoice(step: _StepView) -> bool:
        return step.anchor == "due_date" or step.attach_invoice or step.add_late_fee

    def _finished(self) -> _Decision:
        steps = self.steps
        done = [i for i, s in enumerate(steps) if s.name in self.done]
        last = steps[max(done)] if done else None
        notes = [
            f"{s.name} does not apply: no {s.after_term} in the contract"
            for s in steps[(max(done) + 1 if done else 0) :]
            if self._offset(s) is None
        ]
        if last is not None and last.action == "pause":
            headline = f"paused: work on hold since {self.day(self.done[last.name].at)}"
        else:
            headline = f"finished: every {self.stage} step is done; nothing more will be sent"
        status = "paused" if headline.startswith("paused") else "finished"
        return self.result(status, headline, self.stage_line, *notes)

    # Timing.

    def _anchor(self, index: int, step: _StepView) -> tuple[datetime, str, str]:
        """(anchor, what it is, its day)."""
        if step.anchor == "due_date":
            assert self.facts.invoice is not None  # noqa: S101 - checked by decide()
            inv = self.facts.invoice
            day = self.day(inv.due)
            return self.profile.due_anchor(inv.due), f"invoice {inv.number} fell due on {day}", day
        if step.anchor == "first_unanswered":
            first = self.facts.first_unanswered_at or self.last_outgoing
            day = self.day(first)
            return first, f"your first unanswered message on {day}", day
        if step.anchor == "previous" and self.done:
            for earlier in reversed(self.steps[:index]):
                record = self.done.get(earlier.name)
                if record is not None:
                    day = self.day(record.at)
                    return record.at, f"{earlier.name} on {day}", day
        day = self.day(self.last_outgoing)
        return self.last_outgoing, f"your last message on {day}", day

    def _auto_reply_hold(self, scheduled: datetime) -> tuple[datetime, str] | None:
        # PLAYBOOK principle: "An out-of-office auto-reply is not an answer ... wait until
        # their return date". Without a date: auto_reply_delay; never beyond auto_reply_cap.
        best: tuple[datetime, str] | None = None
        for reply in self.facts.auto_replies:
            if _utc(reply.at) < _utc(self.last_outgoing):
                continue
            cap = self.cal.next_window_open(
                self.defaults.auto_reply_cap_offset.apply(reply.at, self.cal)
            )
            if _utc(cap) <= _utc(scheduled):
                continue  # it cannot postpone the step: spare reading the body
            found = _return_date(reply.subject, reply.body, reply.at.date())
            if found is not None:
                first_day = datetime.combine(found.day, time(0), tzinfo=self.zone)
                until = self.cal.next_window_open(first_day)
                text = f'auto-reply "{found.phrase}": back {self.day(found.day)}'
            else:
                delay = self.defaults.auto_reply_delay_offset
                until = self.cal.next_window_open(delay.apply(reply.at, self.cal))
                text = (
                    f"auto-reply on {self.day(reply.at)} gives no return date: "
                    f"waiting {delay.describe()}"
                )
            if _utc(until) > _utc(cap):
                until = cap
                text += f" (capped at {self.defaults.auto_reply_cap_offset.describe()})"
            if best is None or _utc(until) > _utc(best[0]):
                best = (until, text)
        return best

    def _snoozes(self, name: str) -> list[tuple[datetime, str, str]]:
        """The thread's snooze and this step's ("snoozed:<iso>"), as window openings."""
        snoozes = [self.facts.snoozed_until] if self.facts.snoozed_until else []
        for record in self.facts.steps_done:
            if record.step == name and record.outcome.startswith("snoozed:"):
                try:
                    until = datetime.fromisoformat(record.outcome.removeprefix("snoozed:"))
                except ValueError:
                    continue
                snoozes.append(until if until.tzinfo else until.replace(tzinfo=self.zone))
        return [
            (self.cal.next_window_open(until), "snoozed", f"snoozed until {self.when(until)}")
            for until in snoozes
        ]

    def _task_due(self, name: str) -> datetime:
        """The engine's own tasks are due at once (the next window opening), or when
        their snooze ends."""
        due = self.ctx.opening_after_now(self.cal)[0]
        if self.facts.snoozed_until is None and name not in self.snoozed:
            return due
        for until, _, _ in self._snoozes(name):
            due = _later(due, until)
        return due

    def _last_message(self) -> datetime:
        last = self.last_outgoing
        for step in self.steps:
            record = self.done.get(step.name)
            if record is not None and step.sends_message:
                last = _later(last, record.at)
        return last

    def _timing(
        self, step: _StepView, scheduled: datetime
    ) -> tuple[datetime, datetime, str, list[str], str | None]:
        """(due, due in UTC, status, notes, binding note): ``scheduled`` pushed later by
        what holds it.

        PLAYBOOK principle: "Never send at night, on weekends or on public holidays in
        the client's time zone." Every candidate is a window opening of the client's
        calendar, so the latest of them is one too; ``now``'s next opening is one of
        them, so an overdue step waits for the window rather than going out at night.
        """
        holds: list[tuple[datetime, str, str]] = []
        auto_reply = self._auto_reply_hold(scheduled) if self.facts.auto_replies else None
        if auto_reply is not None:
            holds.append((auto_reply[0], "out_of_office", auto_reply[1]))
        if step.sends_message and step.anchor in ("due_date", "first_unanswered"):
            last = self._last_message()
            gap = self.cal.opening_after(_MESSAGE_GAP, last)
            holds.append(
                (gap, "scheduled", f"held to a week after your last message ({self.day(last)})")
            )
        if self.facts.snoozed_until is not None or step.name in self.snoozed:
            holds += self._snoozes(step.name)
        open_now, open_now_utc = self.ctx.opening_after_now(self.cal)
        due, status, notes, binding = scheduled, "scheduled", [], None
        # Each instant in UTC once: converting is what comparing aware times costs.
        scheduled_utc = due_utc = _utc(scheduled)
        for until, why, note in holds:
            until_utc = _utc(until)
            # Only what still holds the step back is worth saying.
            if until_utc > scheduled_utc and until_utc > open_now_utc:
                notes.append(note)
            if until_utc > due_utc:
                due, due_utc, status, binding = until, until_utc, why, note
        if open_now_utc > due_utc:
            if scheduled_utc < self.now_utc:
                notes.append(f"due since {self.when(scheduled)}")
            due, due_utc, binding = open_now, open_now_utc, None
        if due_utc <= self.now_utc:
            status, binding = "due", None
        return due, due_utc, status, notes, binding

    def _plan_step(self, index: int, step: _StepView, passed: tuple[str, ...]) -> _Decision:
        offset = self.profile.offsets[index]
        assert offset is not None  # noqa: S101 - _next_policy_step skips steps without one
        offset_text = self.profile.offset_texts[index]
        anchor, anchor_text, anchor_day = self._anchor(index, step)
        scheduled = self.cal.opening_after(offset, anchor)
        due, due_utc, status, notes, binding = self._timing(step, scheduled)
        if offset.kind is OffsetKind.WEEKDAY_OF_FOLLOWING_WEEK:
            cause = f"{offset_text} after {anchor_text}"
        elif step.anchor in ("last_outgoing", None) or anchor_text.startswith("your last"):
            # The anchor is your last message, whose day anchor_text names.
            cause = f"no reply for {offset_text} since {anchor_day}"
        else:
            cause = f"{offset_text} after {anchor_text}"
        parts = [cause, self.profile.labels[index]]
        if passed:
            parts += passed
        if notes:
            parts += notes
        deadline = step.deadline_offset.apply(due, self.cal) if step.deadline_offset else None
        late_fee = None
        if step.add_late_fee and self.facts.invoice is not None:
            late_fee = compute_late_fee(self.facts.invoice.amount, self.contract)
        facts, zone = self.facts, self.zone
        planned = _new_step(
            facts.thread_id,
            facts.account,
            step.name,
            index,
            step.action,
            step.template,
            step.mode,
            due if due.tzinfo is zone else due.astimezone(zone),
            "; ".join(parts),
            self.stage,
            self.verdict.counterpart,
            step.attach_invoice,
            late_fee,
            deadline,
            step.task,
            self._checklist(step),
        )
        if facts.counterpart_last_wrote_from is not None:
            mismatch = self._address_mismatch(planned)
            if mismatch is not None:
                return mismatch
        if not self.verbose:
            return _Decision(status, (), planned, self.stage, due_utc)
        return self._describe(planned, status, (cause, binding, [*passed, *notes]))

    def _address_mismatch(self, planned: PlannedStep) -> _Decision | None:
        # PLAYBOOK stage 2: "compare the address we are writing to with the address the
        # client last wrote *from*; a mismatch or a bounce is the first suspect."
        wrote_from = self.facts.counterpart_last_wrote_from
        if (
            wrote_from is None
            or wrote_from.lower() in self.counterparts
            or "address_mismatch" in self.done
            or planned.action not in ("send", "pause")
        ):
            return None
        writing_to = self.verdict.counterpart
        task = self._planned(
            name="address_mismatch",
            index=-1,
            action="task",
            due=self._task_due("address_mismatch"),
            reason=f"we write to {writing_to} but they last wrote from {wrote_from}: check "
            f"before {planned.step} goes out",
            task="address_mismatch",
            checklist=mismatch_items(
                self._checklist_context(),
                f"then {self.stage} step {planned.index + 1} ({planned.step}) follows, due "
                f"{self.when(planned.due_at)}",
            ),
        )
        return self.result(
            "due" if _utc(task.due_at) <= self.now_utc else "scheduled",
            f"check the address first: they last wrote from {wrote_from}, we write to {writing_to}",
            f"next: {planned.reason}",
            self.stage_line,
            step=task,
        )

    def _describe(
        self,
        planned: PlannedStep,
        status: str,
        why: tuple[str, str | None, list[str]],
    ) -> _Decision:
        cause, binding, extras = why
        n = len(self.steps)
        what = f"{self.stage} step {planned.index + 1} of {n} ({planned.step})"
        lines = [f"{what} due {self.when(planned.due_at)} ({cause})"]
        if status == "out_of_office":
            lines = [
                f"not chased: {binding}; next step moves to {self.when(planned.due_at)}",
                f"next: {what} ({cause})",
            ]
        elif status == "snoozed":
            lines = [f"{binding}; then {lines[0]}"]
        lines.append(self.stage_line)
        if planned.action in ("send", "pause"):
            approval = (
                "goes out on its own" if planned.mode == "auto" else "waits for your approval"
            )
            lines.append(f"{planned.action}: template {planned.template}, {approval}")
        headline_says = binding if status in ("out_of_office", "snoozed") else None
        lines += [f"also: {e}" for e in extras if e != headline_says]
        if planned.late_fee is not None:
            currency = self.facts.invoice.currency if self.facts.invoice else ""
            lines.append(f"late fee: {currency} {planned.late_fee} added".replace("  ", " "))
        if planned.deadline_at is not None:
            lines.append(f"payment deadline: {self.day(planned.deadline_at)}")
        lines += [f"task: {item}" for item in planned.checklist]
        return self.result(status, *lines, step=planned)

    def _planned(
        self,
        *,
        name: str,
        index: int,
        action: str,
        due: datetime,
        reason: str,
        template: str | None = None,
        mode: str = "approve",
        attach_invoice: bool = False,
        late_fee: Decimal | None = None,
        deadline: datetime | None = None,
        task: str | None = None,
        checklist: tuple[str, ...] = (),
    ) -> PlannedStep:
        return _new_step(
            thread_id=self.facts.thread_id,
            account=self.facts.account,
            step=name,
            index=index,
            action=action,
            template=template,
            mode=mode,
            due_at=due if due.tzinfo is self.zone else due.astimezone(self.zone),
            reason=reason,
            stage=self.stage,
            counterpart=self.verdict.counterpart,
            attach_invoice=attach_invoice,
            late_fee=late_fee,
            deadline_at=deadline,
            task=task,
            checklist=checklist,
        )

    # Checklists for tasks and reminders (the digest shows them).

    def _checklist_context(self) -> ChecklistContext:
        inv = self.facts.invoice
        invoice = (
            f"invoice {inv.number} ({inv.currency} {inv.amount}, due {self.day(inv.due)})"
            if inv
            else "the unpaid invoice"
        )
        return _new_checklist_context(
            who=self.who(),
            phone=self.client.phone if self.client else None,
            writing_to=self.verdict.counterpart,
            wrote_from=self.facts.counterpart_last_wrote_from,
            counterparts=self.counterparts,
            known_addresses=self.facts.known_addresses,
            invoice=invoice,
        )

    def _checklist(self, step: _StepView) -> tuple[str, ...]:
        if step.task is None and not step.reminders:
            return ()
        return checklist(step.task, step.reminders, self._checklist_context())
