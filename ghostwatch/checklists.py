"""The words of tasks and reminders: what the digest asks the freelancer to do.

Task kinds and reminders are registries keyed by the names a policy step uses
(:data:`ghostwatch.policy.TASK_KINDS`, :data:`ghostwatch.policy.REMINDERS`); each entry
turns a :class:`ChecklistContext` into a few checklist lines. Pure text, no decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "REMINDER_ITEMS",
    "TASK_ITEMS",
    "ChecklistContext",
    "bounce_items",
    "checklist",
    "mismatch_items",
]


@dataclass(frozen=True, slots=True)
class ChecklistContext:
    """What the lines mention. ``invoice`` is a ready phrase ("invoice 12 (EUR ...)")."""

    who: str
    phone: str | None
    writing_to: str | None
    wrote_from: str | None
    counterparts: tuple[str, ...]
    known_addresses: tuple[str, ...]
    invoice: str


def phone_line(ctx: ChecklistContext, purpose: str) -> str:
    # PLAYBOOK safeguards: "ghostwatch flags clients with no phone on file when a step
    # would need one."
    if ctx.phone:
        return f"call {ctx.who} on {ctx.phone} {purpose}"
    return f"no phone on file for {ctx.who}: add one to the client record"


def compare_addresses(ctx: ChecklistContext) -> list[str]:
    # PLAYBOOK stage 2: "compare the address we are writing to with the address the
    # client last wrote *from*; a mismatch or a bounce is the first suspect."
    if ctx.wrote_from is None:
        return [f"compare addresses: we write to {ctx.writing_to}; no message from them on file"]
    if ctx.wrote_from.lower() in ctx.counterparts:
        return [f"compare addresses: we write to {ctx.writing_to}, where they last wrote from"]
    return [
        f"compare addresses: we write to {ctx.writing_to} but they last wrote from "
        f"{ctx.wrote_from}: the first suspect"
    ]


def _investigate(ctx: ChecklistContext) -> list[str]:
    # PLAYBOOK stage 2: "investigate": addresses, a phone call, activity elsewhere.
    return [
        *compare_addresses(ctx),
        phone_line(ctx, "to confirm the message arrived (to get the answer, not to complain)"),
        "check whether they are active elsewhere; any public contact stays neutral and "
        "professional",
    ]


def _small_claims(ctx: ChecklistContext) -> list[str]:
    # PLAYBOOK stage 3: "small-claims court ... (a digest task, never an automatic action)".
    return [
        f"the final notice's deadline has passed for {ctx.invoice}",
        "consider the small-claims court in your jurisdiction: gather the contract, the "
        "invoice and every notice sent",
    ]


def _known_addresses(ctx: ChecklistContext) -> list[str]:
    return [
        *compare_addresses(ctx),
        "known addresses: " + (", ".join(ctx.known_addresses) or "none on file"),
    ]


TASK_ITEMS: dict[str, Callable[[ChecklistContext], list[str]]] = {
    "investigate": _investigate,
    "call": lambda ctx: [phone_line(ctx, "to confirm the message arrived")],
    "check_address": _known_addresses,
    "address_mismatch": compare_addresses,
    "small_claims": _small_claims,
}

REMINDER_ITEMS: dict[str, Callable[[ChecklistContext], list[str]]] = {
    # PLAYBOOK stage 3: re-send the invoice "through every channel available".
    "certified_mail": lambda ctx: [f"send {ctx.invoice} by certified mail too"],
    "call_to_confirm": lambda ctx: [phone_line(ctx, "to confirm they received the invoice")],
    "invoice_work_done": lambda _: ["invoice the work done so far, as the kill-fee clause allows"],
}


def checklist(task: str | None, reminders: Sequence[str], ctx: ChecklistContext) -> tuple[str, ...]:
    """The lines for a step's task kind and reminders, in that order."""
    items = TASK_ITEMS[task](ctx) if task is not None else []
    for reminder in reminders:
        items += REMINDER_ITEMS[reminder](ctx)
    return tuple(items)


def bounce_items(ctx: ChecklistContext, bounced: Sequence[str]) -> tuple[str, ...]:
    """The check-the-address task after a bounce; ``known_addresses`` minus the bounced."""
    failed = {a.lower() for a in bounced}
    others = [a for a in ctx.known_addresses if a.lower() not in failed]
    return (
        f"{', '.join(bounced)} bounced: the message never arrived",
        f"other known addresses: {', '.join(others)}; write to one of them"
        if others
        else "no other address on file: ask for a current one",
        phone_line(ctx, "to ask for a working address"),
    )


def mismatch_items(ctx: ChecklistContext, then: str) -> tuple[str, ...]:
    """The address-mismatch task; ``then`` says which step follows and when."""
    return (
        f"we write to {ctx.writing_to}; they last wrote from {ctx.wrote_from}",
        "check which address they read; add it to the thread or the client record",
        then,
    )
