"""The shipped sample mailbox, judged end to end without any server."""

from __future__ import annotations

import json
import mailbox
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from ghostwatch.cli import main
from ghostwatch.demo import SAMPLE, run_demo


def test_demo_finds_exactly_the_threads_that_await_a_reply() -> None:
    rows = run_demo()
    awaiting = {r.counterpart for r in rows if r.awaiting}
    assert awaiting == {
        "tom@baker-bikes.example",
        "amministrazione@verdi-costruzioni.example",
        "priya@oldco.example",
        "luca.ferri@ferri-arredamenti.example",
        "mark@northwind.example",
    }


def test_demo_tells_auto_replies_bounces_and_other_addresses_apart() -> None:
    by_subject = {r.subject: r for r in run_demo()}
    luca = by_subject["Mockup della home e delle pagine collezione"]
    assert luca.awaiting and "auto-reply" in luca.notes
    priya = by_subject["Portfolio site: staging link for review"]
    assert priya.awaiting and "bounce" in priya.notes and "priya@oldco.example" in priya.notes
    elena = by_subject["Logo: qualche riferimento"]
    assert elena.state == "answered" and "elena.bassi@gmail.example" in elena.notes
    sarah = by_subject["BrightPath: copy for the About and Services pages"]
    assert sarah.state == "answered" and "james@brightpath.example" in sarah.notes
    assert by_subject["promemoria: rinnovo dominio"].state == "note_to_self"


def test_demo_at_an_earlier_instant_sees_only_what_had_arrived() -> None:
    rows = run_demo(datetime(2026, 11, 18, 12, 0, tzinfo=UTC))
    awaiting = {r.counterpart for r in rows if r.awaiting}
    assert "mark@northwind.example" not in awaiting  # his proposal went out on 19 Nov
    assert "priya@oldco.example" in awaiting


def test_demo_cli_json_needs_no_config(tmp_path: Path) -> None:
    runner = CliRunner(env={"GHOSTWATCH_CONFIG": str(tmp_path / "absent.toml")})
    result = runner.invoke(main, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.output)
    assert sum(1 for i in items if i["state"] == "awaiting_reply") == 5


def test_sample_mailbox_is_well_formed() -> None:
    box = mailbox.mbox(SAMPLE, create=False)
    ids = [m["Message-ID"] for m in box]
    assert len(ids) == len(set(ids)) == 40
