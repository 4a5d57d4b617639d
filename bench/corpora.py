"""Classifier precision and recall over real mail from public corpora (and real servers).

    .venv/bin/python bench/corpora.py [--cache DIR] [--no-servers] [--json PATH]

Downloads (once; cached in ``~/.cache/ghostwatch-corpora`` or ``--cache``) the sample
messages that flufl.bounce, bounced, talon and mail-parser ship in their sdists (see
``tests/corpora.py`` for the sources and how each sample is labelled), classifies each
one the way the sync does (only the fetched header fields, through ``HeaderMap``), and
prints samples per source, precision and recall per class, the confusion matrix, every
misclassified sample with the classifier's reasons, and PASS/FAIL for the targets of
``tests/integration/test_corpora.py``. Run as root with Dovecot and Postfix installed,
it also starts a throwaway MailStack and adds a real Sieve vacation reply and a real
Postfix bounce (``--no-servers`` skips that). Writes ``bench/results/corpora.json``.
Like the other benchmarks it exits 0 even when a target is missed (2 when the corpora
cannot be had).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
sys.path.insert(0, str(REPO / "tests"))

import corpora  # noqa: E402  (lives in tests/, put on the path above)
from corpora import Outcome, Sample  # noqa: E402

from ghostwatch.classify import (  # noqa: E402
    Kind,
    bounce_subject,
    classify,
    confirm_bounce_by_body,
    header_text,
    parse_bounce,
)
from ghostwatch.headers import HeaderMap  # noqa: E402
from ghostwatch.message import FETCH_HEADERS  # noqa: E402

BOUNCE_RECALL_TARGET = 0.95
AUTOMATED = frozenset({"bounce", "auto_reply"})


def outcome_of(sample: Sample) -> Outcome:
    """As the sync decides: headers, then the body of a bounce-looking "human"."""
    headers = HeaderMap(corpora.header_block(sample.raw, FETCH_HEADERS))
    result = classify(headers)
    if result.kind is Kind.HUMAN and bounce_subject(header_text(headers.get("Subject") or "")):
        result = confirm_bounce_by_body(sample.raw) or result
    return Outcome(sample, result.kind.value, result.reasons)


def server_made() -> tuple[list[Sample], str]:
    """The real servers' vacation reply and bounce, or none and why not."""
    from mailstack import MailStack, missing_binaries

    if os.geteuid() != 0:
        return [], "not root (Dovecot and Postfix drop privileges themselves)"
    if missing := missing_binaries():
        return [], f"missing {', '.join(missing)}"
    root = Path(tempfile.mkdtemp(prefix="gw-corpora-"))
    try:
        with MailStack(root) as stack:
            return corpora.server_samples(stack), ""
    finally:
        shutil.rmtree(root, ignore_errors=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=None, help="download cache directory")
    parser.add_argument("--no-servers", action="store_true", help="skip Dovecot/Postfix")
    parser.add_argument(
        "--json", type=Path, default=RESULTS_DIR / "corpora.json", help="results file"
    )
    args = parser.parse_args(argv)

    started = time.monotonic()
    try:
        corpus = corpora.load(args.cache or corpora.default_cache_dir())
    except corpora.CorpusUnavailableError as exc:
        print(f"corpora unavailable: {exc}")
        return 2
    loaded = time.monotonic() - started
    samples = list(corpus.samples)
    servers_note = "skipped (--no-servers)"
    if not args.no_servers:
        started = time.monotonic()
        made, why_not = server_made()
        samples += made
        servers_note = (
            f"{len(made)} messages in {time.monotonic() - started:.1f} s"
            if made
            else f"skipped: {why_not}"
        )

    started = time.perf_counter()
    outcomes = [outcome_of(sample) for sample in samples]
    classified = time.perf_counter() - started

    print(corpora.render_report(outcomes))
    print()
    for package, version, filename in corpus.sources:
        print(f"source {package}=={version}: {filename}")
    if corpus.unlabelled:
        print("unlabelled sample files (not counted):")
        for line in corpus.unlabelled:
            print(f"  {line}")
    print(f"real servers: {servers_note}")
    print(
        f"corpora loaded in {loaded:.1f} s (download {corpus.download_seconds:.1f} s; "
        f"0 = all cached), {len(outcomes)} samples classified in {classified * 1000:.0f} ms"
    )

    # What parse_bounce (the body step the sync runs on bounces) makes of the samples.
    bounce_samples = [o.sample for o in outcomes if o.sample.label == "bounce"]
    with_addresses = 0
    for sample in bounce_samples:
        report = parse_bounce(sample.raw)
        with_addresses += bool(report and (report.permanent or report.temporary))
    false_reports = [
        o.sample.id
        for o in outcomes
        if o.sample.label != "bounce"
        and (report := parse_bounce(o.sample.raw)) is not None
        and (report.permanent or report.temporary)
    ]
    print(
        f"parse_bounce: failed addresses found in {with_addresses}/{len(bounce_samples)} "
        f"bounces; in {len(false_reports)} non-bounces"
        + (f" ({', '.join(false_reports)})" if false_reports else "")
    )

    bounce = corpora.scores(outcomes)["bounce"]
    as_human = [
        o.sample.id for o in outcomes if o.sample.label in AUTOMATED and o.predicted == "human"
    ]
    human_as_bounce = [
        o.sample.id for o in outcomes if o.sample.label == "human" and o.predicted == "bounce"
    ]
    recall = bounce.recall or 0.0
    targets = {
        f"bounce recall >= {BOUNCE_RECALL_TARGET}": (recall >= BOUNCE_RECALL_TARGET, recall),
        "no bounce or auto-reply classified human": (not as_human, len(as_human)),
        "no person's reply classified bounce": (not human_as_bounce, len(human_as_bounce)),
    }
    print()
    for name, (ok, value) in targets.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{verdict(ok)}  {name}: {shown}")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "sources": [{"package": p, "version": v, "file": f} for p, v, f in corpus.sources],
                "servers": servers_note,
                "download_seconds": round(corpus.download_seconds, 2),
                "load_seconds": round(loaded, 2),
                "classify_ms": round(classified * 1000, 1),
                "scores": {
                    s.label: {
                        "labelled": s.labelled,
                        "predicted": s.predicted,
                        "correct": s.correct,
                        "precision": s.precision,
                        "recall": s.recall,
                    }
                    for s in corpora.scores(outcomes).values()
                },
                "misclassified": [
                    {
                        "id": o.sample.id,
                        "label": o.sample.label,
                        "predicted": o.predicted,
                        "reasons": list(o.reasons),
                        "why_labelled": o.sample.why,
                    }
                    for o in outcomes
                    if not o.correct
                ],
                "targets": {name: ok for name, (ok, _) in targets.items()},
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
