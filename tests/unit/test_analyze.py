"""Gmail's thread ids join threads that headers alone would keep apart."""

from __future__ import annotations

from ghostwatch.analyze import _unite_gmail_threads


def test_messages_sharing_an_x_gm_thrid_end_in_one_thread() -> None:
    assigned = {1: "ta", 2: "tb", 3: "tc", 4: "td"}
    _unite_gmail_threads({1: 77, 2: 77, 3: 88}, assigned)
    assert assigned[1] == assigned[2] == "ta"
    assert assigned[3] == "tc"
    assert assigned[4] == "td"


def test_chains_of_merges_resolve_to_one_name() -> None:
    assigned = {1: "tc", 2: "tb", 3: "tb", 4: "ta"}
    _unite_gmail_threads({1: 1, 2: 1, 3: 2, 4: 2}, assigned)
    assert set(assigned.values()) == {"ta"}
