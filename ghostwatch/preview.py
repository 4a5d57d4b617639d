"""What a follow-up step would say in a given thread, as it would be sent.

The shell around :mod:`ghostwatch.templates`: fills :class:`TemplateVars` from the
thread's facts, its client and invoice, and the user's ``[profile]``. Sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy.orm import Session

from ghostwatch import engine
from ghostwatch.compose import reply_subject
from ghostwatch.config import AccountSettings, Settings
from ghostwatch.errors import GhostwatchError
from ghostwatch.facts import ThreadFacts
from ghostwatch.gather import gather, name_of
from ghostwatch.policy import Step
from ghostwatch.templates import (
    Locale,
    Rendered,
    TemplateVars,
    deadline_date,
    list_templates,
    render,
)


def profile_dir(settings: Settings) -> Path | None:
    directory = settings.profile.templates_dir
    return directory.expanduser() if directory else None


@dataclass(frozen=True, slots=True)
class Preview:
    to: str
    subject: str
    locale: str
    template: str
    rendered: Rendered


def preview(
    db: Session,
    settings: Settings,
    account: AccountSettings,
    *,
    thread_id: str,
    step_name: str,
    now: datetime,
) -> Preview:
    """Render ``step_name`` (a step of the thread's policy, or a template name)."""
    policy = settings.policy
    [facts] = gather(db, account, policy, thread_ids=[thread_id])
    stage, _why = engine.resolve_stage(facts, policy)
    steps = {s.name: s for s in policy.policies[stage].steps}
    step = steps.get(step_name)
    templates_dir = profile_dir(settings)
    if step is None and step_name not in {t.name for t in list_templates(templates_dir)}:
        raise GhostwatchError(
            f"{step_name!r} is neither a step of policy {stage!r} "
            f"({', '.join(steps) or 'none'}) nor a template (see `ghostwatch templates list`)"
        )
    template = step.template if step is not None else step_name
    if not template:
        action = step.action if step is not None else "?"
        raise GhostwatchError(f"step {step_name!r} of policy {stage!r} sends nothing ({action})")
    vars_ = template_vars(
        settings, account, facts, step, now, counterpart_name=name_of(db, account, facts)
    )
    locale = vars_.locale
    rendered = render(template, vars_, locale, templates_dir=templates_dir)
    to = facts.counterpart_last_wrote_from or facts.verdict.counterpart or "?"
    return Preview(to, reply_subject(facts.subject), locale, template, rendered)


def template_vars(
    settings: Settings,
    account: AccountSettings,
    facts: ThreadFacts,
    step: Step | None,
    now: datetime,
    *,
    counterpart_name: str = "",
) -> TemplateVars:
    """Everything a template of ``step`` may say about this thread, formatted later by
    the template for the client's locale. ``client_name`` is the configured client's
    name, else the name the person signs their mail with (``counterpart_name``), else
    empty: the templates then greet without a name rather than with an address."""
    policy = settings.policy
    client = policy.client_for(facts.verdict.counterparts)
    cal = engine.calendar_for(facts, policy)
    locale: Locale = client.locale if client else policy.defaults.locale
    today = now.astimezone(cal.zone()).date()
    since = facts.verdict.awaiting_since or facts.verdict.last_activity
    started = facts.verdict.first_unanswered_at or since
    invoice = facts.invoice
    late_fee = (
        engine.compute_late_fee(invoice.amount, client.contract if client else None)
        if invoice is not None and step is not None and step.add_late_fee
        else None
    )
    balance = invoice.amount if invoice is not None else Decimal(0)
    profile = settings.profile
    return TemplateVars(
        client_name=client.name if client else counterpart_name,
        project_name=facts.subject,
        original_subject=facts.subject,
        original_date=started.astimezone(cal.zone()).date(),
        days_silent=max((now - since).days, 0),
        invoice_number=invoice.number if invoice else "",
        amount=balance,
        balance=balance,
        currency=invoice.currency if invoice else "EUR",
        due_date=invoice.due if invoice else today,
        days_overdue=max((today - invoice.due).days, 0) if invoice else 0,
        late_fee=late_fee,
        total=balance + late_fee if late_fee is not None else None,
        deadline_date=(
            deadline_date(today, step.deadline, cal) if step is not None and step.deadline else None
        ),
        payment_details=profile.payment_details,
        user_name=profile.name or account.display_name or account.address,
        user_email=account.address,
        user_phone=profile.phone,
        signature=profile.signature or profile.name or account.display_name or "",
        locale=locale,
    )
