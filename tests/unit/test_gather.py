"""From the store to the engine: payment notices, late payers, learned aliases."""

from __future__ import annotations

import mailbox
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ghostwatch import engine
from ghostwatch.analyze import analyze_account
from ghostwatch.config import AccountSettings
from ghostwatch.gather import gather
from ghostwatch.localsource import ingest
from ghostwatch.policy import PolicySettings
from ghostwatch.store import MessageRow, Tracking, open_store
from mailbuilder import make_mail

ME = "alice@studio.example"
ACCOUNT = AccountSettings.model_validate(
    {"name": "t", "address": ME,
     "imap": {"host": "localhost", "username": ME, "password_env": "UNUSED"}}
)  # fmt: skip
T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 10, 10, 0, tzinfo=UTC)
POLICY = PolicySettings.model_validate(
    {
        "clients": [
            {"name": "Verdi", "domains": ["verdi.example"], "stage": "payment",
             "addresses": ["anna@verdi.example", "anna.verdi@mail.example"]}
        ],
        "payment_notices": {"senders": ["*@bank.example"], "subject_patterns": ["(?i)received"]},
    }
)  # fmt: skip


def _store(tmp_path: Path, extra: list[bytes]) -> sessionmaker[Session]:
    box = mailbox.mbox(tmp_path / "box.mbox")
    box.add(make_mail(frm=ME, to="anna@verdi.example", subject="Invoice 2026-020",
                      msgid="<i20@studio.example>", date=T0))  # fmt: skip
    box.add(make_mail(frm=ME, to="anna@verdi.example", subject="Invoice 2026-009",
                      msgid="<i9@studio.example>", date=T0 - timedelta(days=90)))  # fmt: skip
    for raw in extra:
        box.add(raw)
    box.flush()
    sessions = open_store(f"sqlite:///{tmp_path / 'gw.db'}")
    ingest(tmp_path / "box.mbox", ACCOUNT, sessions, NOW)
    analyze_account(sessions, ACCOUNT, NOW)
    with sessions() as db:
        tid = {m.message_id: m.thread_id for m in db.scalars(select(MessageRow))}
        db.add(Tracking(account="t", thread_id=tid["<i20@studio.example>"], stage="payment",
                        invoice_number="2026-020", amount="500", currency="EUR",
                        due=date(2026, 10, 31), updated_at=NOW))  # fmt: skip
        db.add(Tracking(account="t", thread_id=tid["<i9@studio.example>"], stage="payment",
                        invoice_number="2026-009", amount="300", currency="EUR",
                        due=date(2026, 7, 31), paid_at=datetime(2026, 8, 12, tzinfo=UTC),
                        updated_at=NOW))  # fmt: skip
        db.commit()
    return sessions


def test_a_bank_notice_naming_the_invoice_stops_its_payment_steps(tmp_path: Path) -> None:
    notice = make_mail(frm="alerts@bank.example", to=ME, subject="Payment received: 2026-020",
                       msgid="<n1@bank.example>", date=NOW - timedelta(days=1))  # fmt: skip
    sessions = _store(tmp_path, [notice])
    with sessions() as db:
        facts = gather(db, ACCOUNT, POLICY)
    [invoice] = [f for f in facts if f.subject == "Invoice 2026-020"]
    assert invoice.payment_seen_at == NOW - timedelta(days=1)
    assert not [s for s in engine.plan([invoice], POLICY, NOW)]


def test_without_a_notice_the_invoice_is_chased(tmp_path: Path) -> None:
    other = make_mail(frm="alerts@bank.example", to=ME, subject="Payment received: 2026-999",
                      msgid="<n2@bank.example>", date=NOW - timedelta(days=1))  # fmt: skip
    sessions = _store(tmp_path, [other])
    with sessions() as db:
        facts = gather(db, ACCOUNT, POLICY)
    [invoice] = [f for f in facts if f.subject == "Invoice 2026-020"]
    assert invoice.payment_seen_at is None
    [step] = engine.plan([invoice], POLICY, NOW)
    assert step.stage == "payment"


def test_a_client_who_paid_late_before_is_known_as_such(tmp_path: Path) -> None:
    sessions = _store(tmp_path, [])
    with sessions() as db:
        facts = gather(db, ACCOUNT, POLICY)
    [invoice] = [f for f in facts if f.subject == "Invoice 2026-020"]
    assert invoice.days_late_history == (12,)


def test_addresses_the_client_writes_from_are_learned(tmp_path: Path) -> None:
    answer = make_mail(frm="anna.verdi@mail.example", to=ME, subject="Re: Invoice 2026-009",
                       msgid="<a1@mail.example>", date=T0 - timedelta(days=80),
                       in_reply_to="<i9@studio.example>")  # fmt: skip
    stray = make_mail(frm="bruno@verdi.example", to=ME, subject="Hello",
                      msgid="<b1@verdi.example>", date=T0 - timedelta(days=10))  # fmt: skip
    sessions = _store(tmp_path, [answer, stray])
    with sessions() as db:
        facts = gather(db, ACCOUNT, POLICY)
    [invoice] = [f for f in facts if f.subject == "Invoice 2026-020"]
    assert "bruno@verdi.example" in invoice.known_addresses
    assert "anna.verdi@mail.example" in invoice.known_addresses


def test_addresses_are_learned_for_each_of_many_clients_known_by_domain(
    tmp_path: Path,
) -> None:
    # Domain matches are read in groups of OR-ed conditions (SQLite caps the depth of
    # an expression): a client in every group still learns its senders.
    extra = []
    for i in range(120):
        extra += [
            make_mail(frm=ME, to=f"boss@d{i}.example", subject=f"Quote {i}",
                      msgid=f"<q{i}@studio.example>", date=T0),
            make_mail(frm=f"stray@d{i}.example", to=ME, subject=f"Hello {i}",
                      msgid=f"<s{i}@d{i}.example>", date=T0 - timedelta(days=5)),
        ]  # fmt: skip
    sessions = _store(tmp_path, extra)
    clients = [{"name": f"Client {i}", "domains": [f"d{i}.example"]} for i in range(120)]
    policy = PolicySettings.model_validate({"clients": clients})
    with sessions() as db:
        facts = gather(db, ACCOUNT, policy)
    quotes = {f.subject: f for f in facts if f.subject.startswith("Quote")}
    assert len(quotes) == 120
    for i in range(120):
        assert f"stray@d{i}.example" in quotes[f"Quote {i}"].known_addresses, i


def test_a_folder_rule_places_the_thread_in_its_stage(tmp_path: Path) -> None:
    sessions = _store(tmp_path, [])
    folder = f"local:{(tmp_path / 'box.mbox').resolve()}"
    policy = PolicySettings.model_validate(
        {"rules": [{"folder": folder, "stage": "project"}], "clients": []}
    )
    with sessions() as db:
        facts = gather(db, ACCOUNT, policy)
    assert {f.folder for f in facts} == {folder}
    untracked = [replace(f, stage=None) for f in facts]  # no `ghostwatch track` said otherwise
    assert {engine.resolve_stage(f, policy)[0] for f in untracked} == {"project"}


def test_one_thread_gathers_the_same_facts_as_the_whole_account(tmp_path: Path) -> None:
    """gather reads only the mail a thread's facts depend on (its messages, the threads
    its counterparts answered in, what its client wrote from, notices naming its
    invoice): asked for one thread, it must say what it says with everything read."""
    extra = [
        make_mail(frm="anna.verdi@mail.example", to=ME, subject="Re: Invoice 2026-009",
                  msgid="<a1@mail.example>", date=T0 - timedelta(days=80),
                  in_reply_to="<i9@studio.example>"),
        make_mail(frm="bruno@sub.verdi.example", to=ME, subject="Hello",
                  msgid="<b1@verdi.example>", date=T0 - timedelta(days=10)),
        make_mail(frm=ME, to="anna@verdi.example", subject="Logo",
                  msgid="<l1@studio.example>", date=T0 - timedelta(days=30)),
        make_mail(frm="anna@verdi.example", to=ME, subject="Re: Logo",
                  msgid="<l2@verdi.example>", date=T0 - timedelta(days=27),
                  in_reply_to="<l1@studio.example>"),
        make_mail(frm="alerts@bank.example", to=ME, subject="Payment received: 2026-020",
                  msgid="<n1@bank.example>", date=NOW - timedelta(days=1)),
        make_mail(frm="zoe@elsewhere.example", to=ME, subject="Unrelated",
                  msgid="<z1@elsewhere.example>", date=T0 - timedelta(days=5)),
    ]  # fmt: skip
    sessions = _store(tmp_path, extra)
    with sessions() as db:
        everything = {f.thread_id: f for f in gather(db, ACCOUNT, POLICY, awaiting_only=False)}
        assert len(everything) >= 4
        for tid, facts in everything.items():
            assert gather(db, ACCOUNT, POLICY, thread_ids=[tid]) == [facts]
    [invoice] = [f for f in everything.values() if f.subject == "Invoice 2026-020"]
    assert invoice.payment_seen_at == NOW - timedelta(days=1)
    assert invoice.reply_latencies == (timedelta(days=3),)
    assert "bruno@sub.verdi.example" in invoice.known_addresses
