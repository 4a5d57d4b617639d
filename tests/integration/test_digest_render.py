"""The digest's HTML as a phone shows it: headless Chromium at 390 px wide.

Needs the Debian package ``chromium``; without it these tests skip, except on CI
(``CI=true``), where a missing browser fails the build. The screenshots are checked for
size and for not being blank; the layout itself was reviewed by eye (see
docs/digest-phone.png).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, NoReturn

import pytest

from ghostwatch.digestview import (
    DigestContent,
    DraftItem,
    Flag,
    TaskItem,
    Upcoming,
    render_digest,
)
from ghostwatch.replycommands import HELP_TEXT_EN, HELP_TEXT_IT

INSTALL_COMMAND = "apt-get install -y --no-install-recommends chromium"
WIDTH, HEIGHT = 390, 2400
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    _unavailable(f"headless screenshot needs the chromium binary; install with: {INSTALL_COMMAND}")


def screenshot(html: str, directory: Path, name: str) -> Path:
    """Writes ``html`` to ``directory`` and returns Chromium's phone-sized PNG of it."""
    page = directory / f"{name}.html"
    page.write_text(html, encoding="utf-8")
    png = directory / f"{name}.png"
    command = [
        _chromium(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={directory / 'chromium-profile'}",
        f"--window-size={WIDTH},{HEIGHT}",
        f"--screenshot={png}",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return png


def read_png(png: Path) -> tuple[int, int, bytes]:
    """(width, height, decompressed image data) from the IHDR and IDAT chunks."""
    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and color in (2, 6), (depth, color)  # 8-bit RGB or RGBA
    idat = bytearray()
    pos = 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(bytes(idat))
    channels = 4 if color == 6 else 3
    assert len(raw) == height * (1 + width * channels), "truncated image data"
    return width, height, raw


def realistic(locale: Literal["en", "it"]) -> DigestContent:
    """A busy morning: 3 drafts (one automatic), 2 tasks, 2 flags, 1 upcoming."""
    now = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    en = locale == "en"
    drafts = (
        DraftItem(
            number=1,
            row_id=101,
            to="Laura Bianchi <laura.bianchi@acme-interiors.example>",
            subject="Re: Website redesign \u2013 homepage mock-ups and the new product catalogue",
            step="nudge",
            why=(
                "no reply for 5 business days since Tue 24 Nov"
                if en
                else "nessuna risposta da 5 giorni lavorativi, da mar 24 nov"
            ),
            body=(
                "Hi Laura,\n\nJust checking in on the homepage mock-ups I sent last "
                "Tuesday. Could you let me know by Friday whether option B works for "
                "you? Then I can start on the catalogue pages next week.\n\n"
                "Best,\nMario"
                if en
                else "Ciao Laura,\n\nvolevo sapere se hai avuto modo di guardare le "
                "bozze della homepage che ti ho mandato martedì scorso. Mi fai sapere "
                "entro venerdì se l'opzione B va bene? Così la settimana prossima "
                "inizio con le pagine del catalogo.\n\nA presto,\nMario"
            ),
            attachments=(),
            due_at=now + timedelta(hours=2, minutes=15),
        ),
        DraftItem(
            number=2,
            row_id=102,
            to="accounts-payable@northwind-logistics-holdings.example",
            subject="Re: Invoice 2026-042 (€1,850.00)",
            step="payment_notice",
            why="invoice 12 days overdue" if en else "fattura scaduta da 12 giorni",
            body=(
                "Hello,\n\ninvoice 2026-042 for €1,850.00 was due on 18 November. "
                "You can pay by bank transfer to\n"
                "  IBAN IT60 X054 2811 1010 0000 0123 456\n"
                "or at https://pay.example.test/i/2026-042-northwind-logistics-holdings"
                "\n\nThank you,\nMario Rossi"
                if en
                else "Buongiorno,\n\nla fattura 2026-042 di 1.850,00 € era in scadenza il "
                "18 novembre. Potete pagare con bonifico a\n"
                "  IBAN IT60 X054 2811 1010 0000 0123 456\n"
                "oppure su https://pay.example.test/i/2026-042-northwind-logistics-holdings"
                "\n\nGrazie,\nMario Rossi"
            ),
            attachments=("fattura-2026-042.pdf",),
            due_at=now + timedelta(hours=3),
        ),
        DraftItem(
            number=3,
            row_id=103,
            to="tom@brightside.example",
            subject="Re: Logo <final> & brand colours",
            step="final_notice",
            why=(
                "third reminder, 30 days after the invoice"
                if en
                else "terzo sollecito, 30 giorni dopo la fattura"
            ),
            body=(
                "Hi Tom,\n\ninvoice 2026-031 is now 30 days overdue. Unless it is paid "
                "by Mon 7 Dec, I will add the late fee agreed in our contract.\n\nMario"
                if en
                else "Ciao Tom,\n\nla fattura 2026-031 è scaduta da 30 giorni. Se non "
                "viene pagata entro lun 7 dic, applicherò la penale prevista dal "
                "contratto.\n\nMario"
            ),
            attachments=("invoice-2026-031.pdf", "statement-november.pdf"),
            due_at=now + timedelta(hours=5),
            auto=True,
        ),
    )
    tasks = (
        TaskItem(
            thread_id="t-4812",
            counterpart="Brightside Studio",
            subject="Re: Logo final & brand colours",
            kind="call",
            text=(
                "Three emails unanswered: a short call usually settles it."
                if en
                else "Tre email senza risposta: una telefonata di solito risolve."
            ),
            phone="+39 02 1234 5678",
            checklist=(
                ("Confirm they received invoice 2026-031", "Ask for a payment date")
                if en
                else ("Conferma che hanno ricevuto la fattura", "Chiedi una data di pagamento")
            ),
        ),
        TaskItem(
            thread_id="t-4820",
            counterpart="Northwind Logistics",
            subject="Re: Invoice 2026-042",
            kind="check_address",
            text=(
                "Replies come from a different domain than the invoice went to."
                if en
                else "Le risposte arrivano da un dominio diverso da quello della fattura."
            ),
            phone=None,
        ),
    )
    flags = (
        Flag(
            "slow_client",
            "Acme usually answers in 9 days (median of 6 replies)"
            if en
            else "Acme di solito risponde in 9 giorni (mediana di 6 risposte)",
        ),
        Flag(
            "uncertain_send",
            "Reminder to Tom on Fri 27 Nov: the server did not confirm it; check Sent"
            if en
            else "Sollecito a Tom di ven 27 nov: il server non l'ha confermato; controlla",
        ),
    )
    upcoming = (
        Upcoming(
            to="giulia@verdi-architetti.example",
            subject="Re: Preventivo ristrutturazione" if not en else "Re: Renovation quote",
            step="prospect_last_check_in",
            at=now + timedelta(hours=30),
            stop_hint="reply `stop 4`" if en else "rispondi `ferma 4`",
        ),
    )
    return DigestContent(
        owner_name="Mario",
        account="mario@rossi-design.example",
        generated_at=now,
        time_zone="Europe/Rome",
        locale=locale,
        drafts=drafts,
        tasks=tasks,
        flags=flags,
        upcoming=upcoming,
        token_tag="[gw:k3zq7w2mvd4xj5c6rnb2h7tqye]",
        help_text=HELP_TEXT_EN if en else HELP_TEXT_IT,
    )


@pytest.mark.parametrize("locale", ["en", "it"])
def test_the_digest_renders_on_a_phone(locale: Literal["en", "it"], tmp_path: Path) -> None:
    rendered = render_digest(realistic(locale))
    png = screenshot(rendered.html, tmp_path, f"digest-{locale}")
    assert png.is_file()
    width, height, raw = read_png(png)
    assert (width, height) == (WIDTH, HEIGHT)
    # A blank page compresses to a handful of distinct bytes; text, cards and pills
    # give many.
    assert len(set(raw)) > 32, "the screenshot is blank"
