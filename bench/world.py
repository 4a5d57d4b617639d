"""The simulated world, long form: `.venv/bin/python bench/world.py [--clients 300]
[--days 90] [--seed 7] [--no-faults]` (as root, like the test suite: it starts its own
Dovecot and Postfix). Prints the invariants as figures; exit status 1 if any of the
must-be-zero figures is not zero."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from world import World

from mailstack import MailStack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-faults", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gw-world-"))
    root.chmod(0o755)
    stack = MailStack(root / "stack")
    stack.start()
    try:
        world = World(stack, root, clients=args.clients, days=args.days, seed=args.seed,
                      faults=not args.no_faults)  # fmt: skip
        figures = world.run()
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(figures.table())
    for line in figures.details[:50]:
        print("  " + line)
    bad = (
        figures.duplicate_sends,
        figures.sends_after_a_human_reply,
        figures.sends_outside_the_window,
        figures.due_steps_never_taken,
        figures.drafts_lost,
    )
    return 1 if any(bad) else 0


if __name__ == "__main__":
    sys.exit(main())
