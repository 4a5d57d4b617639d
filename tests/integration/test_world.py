"""The simulated world, short form: ghostwatch's promises over weeks of simulated mail.

See tests/world.py. The long form (more clients, 90 days) is `bench/world.py`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from world import World

from mailstack import MailStack

pytestmark = pytest.mark.mailstack

#: Small enough for every CI run; bench/world.py runs the long one.
CLIENTS = int(os.environ.get("GHOSTWATCH_WORLD_CLIENTS", "16"))
DAYS = int(os.environ.get("GHOSTWATCH_WORLD_DAYS", "45"))


def test_a_simulated_world_keeps_every_promise(mailstack: MailStack) -> None:
    """Clients who answer (late, from another address, through a colleague, after an
    absence), never answer, bounce, pay on time or late; the owner answering digests;
    crashes at the failpoints and IMAP/SMTP outages. No duplicate, no send after a
    reply, none outside the window, no due step left behind, no draft lost."""
    root = Path(tempfile.mkdtemp(prefix="gw-world-"))
    root.chmod(0o755)
    try:
        figures = World(mailstack, root, clients=CLIENTS, days=DAYS, seed=11).run()
    finally:
        if mailstack._dovecot is None:  # an outage at the very end: leave the stack up
            mailstack.start_dovecot()
        shutil.rmtree(root, ignore_errors=True)
    print("\n" + figures.table())
    detail = "\n".join(figures.details[:30])
    assert figures.duplicate_sends == 0, detail
    assert figures.sends_after_a_human_reply == 0, detail
    assert figures.sends_outside_the_window == 0, detail
    assert figures.due_steps_never_taken == 0, detail
    assert figures.drafts_lost == 0, detail
    # The world must have exercised what it claims to.
    assert figures.follow_ups_sent > CLIENTS // 2
    assert figures.crashes > 0 and figures.digests_answered > 0
