"""A real Dovecot + Postfix mail stack on loopback, for integration tests and benchmarks.

Shape (recipe and rationale: ../shared/MAILSTACK.md)::

    client --SMTP--> Postfix --LMTP--> Dovecot (+ Pigeonhole Sieve) --IMAP--> client

Everything one stack needs (configs, queue, mail, logs, sockets) lives under the
``root`` directory it is given, and all ports are free loopback ports picked at
start, so several stacks can run at once, next to a system-wide Dovecot/Postfix.

Must run as root: Dovecot and Postfix drop privileges themselves (mail is owned
by nobody:nogroup, Postfix runs as its ``postfix`` user).

Coexistence, checked on Debian 12 / Postfix 3.7 / Dovecot 2.3.19:

* Postfix keeps all per-instance state in ``queue_directory`` (``pid/master.pid``,
  the ``public/`` and ``private/`` service sockets) and ``data_directory``
  (``master.lock``), and names its listening ports in ``master.cf``. With
  ``postfix -c DIR`` pointing at a config that moves all three, two test
  instances ran side by side without noticing each other; the system instance
  (``/etc/postfix``, ``/var/spool/postfix``, port 25) shares none of them. On a
  machine installed with "No configuration" there is no ``/etc/postfix/main.cf``,
  so the system instance cannot even start. Running as root, ``-c`` needs no
  ``alternate_config_directories`` entry (that only gates the set-gid
  ``postdrop``/``postqueue``, which we never use: mail comes in over SMTP).
* Dovecot keeps everything in ``base_dir`` (sockets, ``master.pid``) and
  ``state_dir``; both are per stack. ``doveadm`` is always given ``-c`` so it
  talks to this stack, never to ``/etc/dovecot``.
"""

from __future__ import annotations

import atexit
import contextlib
import email.utils
import grp
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

from imapclient import IMAPClient, imap_utf7

__all__ = [
    "DEFAULT_DOMAINS",
    "INSTALL_COMMAND",
    "MailStack",
    "MailStackError",
    "MaildirMessage",
    "missing_binaries",
]

DEFAULT_DOMAINS: tuple[str, ...] = ("example.test", "client.test", "agency.test")
INSTALL_COMMAND = "sudo bash scripts/install-system-deps.sh"
#: Recipients the stack's Postfix always refuses at RCPT: 451 (try later), 421 (closing).
GREYLISTED = "greylisted@client.test"
CLOSING = "closing@client.test"

# Dovecot refuses to deliver mail as root; these are Debian's nobody:nogroup.
MAIL_UID = 65534
MAIL_GID = 65534

_POSTFIX_DAEMON_DIR = Path("/usr/lib/postfix/sbin")
_MASTER_CF_DIST = Path("/usr/share/postfix/master.cf.dist")
_POSTFIX_FILES = Path("/etc/postfix/postfix-files")
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0
# sockaddr_un.sun_path is 108 bytes; Dovecot's longest socket name under
# base_dir is about 30 characters ("login/imap-urlauth", "indexer-worker").
_MAX_BASE_DIR_LEN = 70

# IMAP system flags and their Maildir info letters (Maildir spec, "info" section).
_MAILDIR_FLAGS = {
    "\\draft": "D",
    "\\flagged": "F",
    "\\answered": "R",
    "\\seen": "S",
    "\\deleted": "T",
}

_APPENDUID_RE = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)


class MailStackError(RuntimeError):
    """The stack failed to start, stop or do what was asked; the message says why."""


class MaildirMessage(NamedTuple):
    """One message for :meth:`MailStack.write_maildir`."""

    raw: bytes
    when: datetime
    flags: Sequence[str] = ()


@dataclass
class _User:
    address: str
    password: str
    password_hash: str
    home: Path


_PROGRAMS = ("dovecot", "doveadm", "postfix")
_REQUIRED_FILES = (
    _POSTFIX_DAEMON_DIR / "master",
    _MASTER_CF_DIST,
    _POSTFIX_FILES,
    Path("/usr/lib/dovecot/lmtp"),  # dovecot-lmtpd
    Path("/usr/lib/dovecot/modules/lib90_sieve_plugin.so"),  # dovecot-sieve
)


def _program(name: str) -> str:
    """Absolute path of ``name``; /usr/sbin is not on every PATH (CI runners)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise MailStackError(f"{name} not found; install with: {INSTALL_COMMAND}")
    return found


def missing_binaries() -> list[str]:
    """Programs and files this stack needs that are not installed."""
    missing = [
        name
        for name in _PROGRAMS
        if not (shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin"))
    ]
    return missing + [str(path) for path in _REQUIRED_FILES if not path.exists()]


# Ports handed out by this process and not yet released: binding to port 0 and
# closing again is racy, and two stacks started back to back in one process
# would otherwise be likely to get the same "free" port.
_ports_lock = threading.Lock()
_ports_in_use: set[int] = set()


def _reserve_ports(count: int) -> list[int]:
    with _ports_lock:
        held: list[socket.socket] = []
        ports: list[int] = []
        try:
            while len(ports) < count:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(sock)  # keep bound so the kernel won't repeat it
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
                if port not in _ports_in_use:
                    ports.append(port)
        finally:
            for sock in held:
                sock.close()
        _ports_in_use.update(ports)
        return ports


def _release_ports(ports: Iterable[int]) -> None:
    with _ports_lock:
        _ports_in_use.difference_update(ports)


def _uid_of(name: str) -> int:
    return pwd.getpwnam(name).pw_uid


def _gid_of(name: str) -> int:
    return grp.getgrnam(name).gr_gid


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"--- {path}: (missing)"
    return f"--- {path} (last {lines} lines):\n" + "\n".join(text.splitlines()[-lines:])


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie (nothing may reap daemons here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # Field 3, after the parenthesised command name (which may contain spaces).
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _process_group_alive(pgid: int) -> list[int]:
    """PIDs (non-zombie) whose process group is ``pgid``."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # fields[0] = state, fields[2] = pgrp
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def _wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def _greets(port: int, prefix: bytes) -> bool:
    """True if something on 127.0.0.1:``port`` sends a greeting starting with ``prefix``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            return sock.recv(64).startswith(prefix)
    except OSError:
        return False


def _sieve_string(text: str) -> str:
    """A Sieve quoted string (RFC 5228 section 2.4.2)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _has_header(raw: bytes, name: bytes) -> bool:
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    return re.search(rb"(?im)^" + re.escape(name) + rb"[ \t]*:", head) is not None


class MailStack:
    """Dovecot (IMAP, LMTP, Sieve) and Postfix (SMTP) in one directory, on loopback.

    Usage::

        with MailStack(tmpdir) as stack:
            stack.add_user("alice@example.test", "alice-pw")
            stack.deliver("bob@client.test", ["alice@example.test"], raw)
            [msg] = stack.wait_for_messages("alice@example.test", "INBOX", 1)

    ``root`` must be reachable by uid 65534 (every parent directory world-
    executable), so a directory from ``tempfile.mkdtemp()`` works and pytest's
    ``tmp_path`` (under a 0700 directory) does not.

    Optional, off by default (the plain ``smtp_port`` never changes):

    ``submission=True``
        A second Postfix listener on ``submission_port`` that behaves like a
        provider's submission service: SMTP AUTH checked by Dovecot (Postfix
        ``smtpd_sasl_type = dovecot``, PLAIN and LOGIN, the stack's users and
        passwords), nothing accepted without it, and even an authenticated
        sender may only reach the stack's domains; anything else is refused at
        RCPT time (``554 5.7.1 <addr>: Relay access denied``) instead of
        bouncing later.
    ``tls_chain=PATH`` (needs ``submission=True``)
        A PEM file with the private key followed by its certificate chain (what
        trustme's ``LeafCert.private_key_and_cert_chain_pem`` writes). The
        submission port then requires STARTTLS (RFC 3207) and offers AUTH only
        after it, and ``smtps_port`` speaks implicit TLS (RFC 8314) with the
        same AUTH and relay rules.
    """

    host = "127.0.0.1"
    #: IMAP hierarchy separator of the inbox namespace ("Clients/Acme").
    separator = "/"

    def __init__(
        self,
        root: Path,
        domains: Sequence[str] = DEFAULT_DOMAINS,
        *,
        submission: bool = False,
        tls_chain: Path | None = None,
    ) -> None:
        if not domains:
            raise ValueError("MailStack needs at least one mail domain")
        if tls_chain is not None and not submission:
            raise ValueError("tls_chain is used by the submission ports: pass submission=True")
        self.submission = submission
        self.tls_chain = Path(tls_chain) if tls_chain is not None else None
        #: Authenticated submission (see the class docstring); 0 unless enabled.
        self.submission_port = 0
        #: Implicit-TLS submission; 0 unless ``tls_chain`` is given.
        self.smtps_port = 0
        self.root = Path(root).resolve()
        self.domains: tuple[str, ...] = tuple(d.lower() for d in domains)
        self.imap_port = 0
        self.smtp_port = 0
        self.lmtp_port = 0
        self._users: dict[str, _User] = {}
        self._users_lock = threading.Lock()
        self._dovecot: subprocess.Popen[bytes] | None = None
        self._postfix_pid: int | None = None
        self._started = False
        self._maildir_seq = 0

        self.mail_dir = self.root / "mail"
        self.dovecot_conf = self.root / "dovecot" / "dovecot.conf"
        self.dovecot_log = self.root / "dovecot.log"
        self.postfix_dir = self.root / "postfix"
        self.postfix_log = self.root / "maillog"
        self._base_dir = self.root / "dovecot" / "run"
        self._passwd_dir = self.root / "dovecot" / "users"
        self._dovecot_stderr = self.root / "dovecot.stderr.log"
        self._postfix_stderr = self.root / "postfix.stderr.log"

    # ---- lifecycle -------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Write the configs, start Dovecot and Postfix, wait until both greet.

        Raises :class:`MailStackError` with the tail of the logs if either fails.
        """
        if self._started:
            raise MailStackError("MailStack already started")
        self._check_environment()
        extra = (1 if self.submission else 0) + (1 if self.tls_chain is not None else 0)
        ports = _reserve_ports(3 + extra)
        self.imap_port, self.lmtp_port, self.smtp_port = ports[:3]
        if self.submission:
            self.submission_port = ports[3]
        if self.tls_chain is not None:
            self.smtps_port = ports[4]
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        for sub in (self.dovecot_conf.parent, self.postfix_dir):
            sub.mkdir(exist_ok=True)
        self.mail_dir.mkdir(exist_ok=True)
        os.chown(self.mail_dir, MAIL_UID, MAIL_GID)
        self._write_dovecot_conf()
        for user in self._users.values():
            self._write_passwd_file(user)
        self._write_postfix_conf()
        self._started = True
        # A session that dies without teardown (Ctrl-C at the wrong moment)
        # must not leave daemons behind.
        atexit.register(self.stop)
        try:
            self.start_dovecot()
            self._start_postfix()
        except BaseException:
            with contextlib.suppress(MailStackError):
                self.stop()
            raise

    def stop(self) -> None:
        """Stop Postfix and Dovecot and make sure none of their processes remain.

        Safe to call more than once and after a failed :meth:`start`.
        """
        if not self._started:
            return
        errors: list[str] = []
        try:
            self._stop_postfix()
        except MailStackError as exc:
            errors.append(str(exc))
        try:
            self.stop_dovecot()
        except MailStackError as exc:
            errors.append(str(exc))
        _release_ports(
            (self.imap_port, self.lmtp_port, self.smtp_port, self.submission_port, self.smtps_port)
        )
        self._started = False
        atexit.unregister(self.stop)
        if errors:
            raise MailStackError("\n".join(errors))

    def start_dovecot(self) -> None:
        """(Re)start Dovecot on the same ports, e.g. after :meth:`stop_dovecot`."""
        if self._dovecot is not None and self._dovecot.poll() is None:
            raise MailStackError("Dovecot is already running")
        # -F keeps the master in the foreground: it stays our child, so we can
        # wait() for it. A new session makes its whole tree one process group.
        with self._dovecot_stderr.open("ab") as err:
            self._dovecot = subprocess.Popen(
                [_program("dovecot"), "-F", "-c", str(self.dovecot_conf)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        proc = self._dovecot
        ready = _wait_until(
            lambda: (
                proc.poll() is not None
                or (_greets(self.imap_port, b"* OK") and _greets(self.lmtp_port, b"220"))
            ),
            _START_TIMEOUT,
        )
        if proc.poll() is not None or not ready:
            self._kill_dovecot()
            raise MailStackError(
                f"Dovecot did not start (exit status {proc.returncode}, "
                f"IMAP port {self.imap_port}, LMTP port {self.lmtp_port})\n" + self.log_tails()
            )

    def stop_dovecot(self) -> None:
        """Stop Dovecot (all IMAP connections drop), like a server restart's first half."""
        proc = self._dovecot
        if proc is None:
            return
        if proc.poll() is None:
            # The whole group at once: signalling only the master makes it wait
            # about a second for its children.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(_STOP_TIMEOUT)
        self._kill_dovecot()

    def _kill_dovecot(self) -> None:
        proc = self._dovecot
        if proc is None:
            return
        self._kill_group(proc.pid, "Dovecot")
        if proc.poll() is None:
            proc.kill()
        proc.wait(_STOP_TIMEOUT)
        self._dovecot = None

    def _start_postfix(self) -> None:
        # Skip postfix-script's integrity checks: _make_postfix_dirs did the
        # part that matters. The file is removed by every start.
        (self.postfix_dir / "queue" / "quick-start").touch()
        with self._postfix_stderr.open("ab") as err:
            result = subprocess.run(
                [_program("postfix"), "-c", str(self.postfix_dir), "start"],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                check=False,
                timeout=_START_TIMEOUT,
            )
        pid_file = self.postfix_dir / "queue" / "pid" / "master.pid"
        with contextlib.suppress(FileNotFoundError, ValueError):
            self._postfix_pid = int(pid_file.read_text().split()[0])
        if result.returncode != 0 or not _wait_until(
            lambda: (
                _greets(self.smtp_port, b"220")
                and (not self.submission or _greets(self.submission_port, b"220"))
            ),
            _START_TIMEOUT,
        ):
            raise MailStackError(
                f"Postfix did not start (postfix start exit status {result.returncode}, "
                f"SMTP port {self.smtp_port})\n" + self.log_tails()
            )

    def _stop_postfix(self) -> None:
        pid = self._postfix_pid
        if pid is None:
            return
        # Not "postfix stop": it signals, then polls with `sleep 1` (a second lost
        # per stop). The master is a session leader; its children share its group.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        _wait_until(lambda: not _pid_alive(pid), _STOP_TIMEOUT)
        self._kill_group(pid, "Postfix")
        self._postfix_pid = None

    @staticmethod
    def _kill_group(pgid: int, what: str) -> None:
        """SIGKILL whatever is left of process group ``pgid``; fail if it won't die."""
        if _wait_until(lambda: not _process_group_alive(pgid), 2.0):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        if not _wait_until(lambda: not _process_group_alive(pgid), _STOP_TIMEOUT):
            raise MailStackError(f"{what} processes survived SIGKILL: {_process_group_alive(pgid)}")

    def log_tails(self, lines: int = 30) -> str:
        """The last lines of every log of this stack, for error messages."""
        return "\n".join(
            _tail(path, lines)
            for path in (
                self.dovecot_log,
                self._dovecot_stderr,
                self.postfix_log,
                self._postfix_stderr,
            )
        )

    def _check_environment(self) -> None:
        if os.geteuid() != 0:
            raise MailStackError(
                "MailStack must run as root (Dovecot and Postfix drop privileges themselves)"
            )
        missing = missing_binaries()
        if missing:
            raise MailStackError(f"missing: {', '.join(missing)}; install with: {INSTALL_COMMAND}")
        if len(str(self._base_dir)) > _MAX_BASE_DIR_LEN:
            raise MailStackError(
                f"MailStack root {self.root} is too long for Dovecot's unix sockets; "
                "use a short directory such as tempfile.mkdtemp()"
            )
        for parent in self.root.parents:
            if parent.exists() and not parent.stat().st_mode & 0o001:
                raise MailStackError(
                    f"{parent} is not world-searchable, so Dovecot's mail processes "
                    f"(uid {MAIL_UID}) cannot reach {self.root}; use a directory "
                    "such as tempfile.mkdtemp() instead of pytest's tmp_path"
                )

    # ---- configuration ---------------------------------------------------

    def _write_dovecot_conf(self) -> None:
        first_domain = self.domains[0]
        conf = f"""\
# Generated by tests/mailstack.py for one throwaway test stack; see MAILSTACK.md.
instance_name = ghostwatch-{self.imap_port}
base_dir = {self._base_dir}
state_dir = {self.root / "dovecot" / "state"}
log_path = {self.dovecot_log}
listen = 127.0.0.1
protocols = imap lmtp
hostname = mail.{first_domain}
postmaster_address = postmaster@{first_domain}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
# A wrong password answers after 0.5 s instead of 2 s (tests of bad credentials).
auth_failure_delay = 0
# Mail is owned by nobody:nogroup; Dovecot won't run mail processes as root.
first_valid_uid = {MAIL_UID}
first_valid_gid = {MAIL_GID}
mail_location = maildir:~/Maildir
# Durability is worthless in a throwaway stack; fsync makes APPEND slow.
mail_fsync = never
# alice+tag@example.test is alice (as at Gmail, Fastmail); same in Postfix.
recipient_delimiter = +
# Sieve vacation replies go out through our Postfix, not /usr/sbin/sendmail.
submission_host = 127.0.0.1:{self.smtp_port}

# One passwd-file per user: Dovecot re-reads a changed passwd-file at most once
# a second, but opens a file it has not seen before on its first lookup, so a
# user added after start can log in at once.
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT username_format=%u {self._passwd_dir}/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self._passwd_dir}/%u
}}

namespace inbox {{
  inbox = yes
  separator = {self.separator}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}

# No auth penalty: after one failed login Dovecot would delay every later login
# from 127.0.0.1 (2, 4, ... 15 s), i.e. every later test. login_trusted_networks
# does not lift it in 2.3.19; this (from Dovecot's docs) does.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

protocol imap {{
  # Benchmarks append over several connections per user (default is 10).
  mail_max_userip_connections = 100
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  sieve = file:~/sieve;active=~/.dovecot.sieve
}}
"""
        if self.submission:
            conf += f"""
# Postfix's submission ports ask Dovecot to check SMTP AUTH (smtpd_sasl_type = dovecot).
service auth {{
  unix_listener {self._sasl_socket.name} {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"""
        self.dovecot_conf.write_text(conf)

    def _write_postfix_conf(self) -> None:
        pf = self.postfix_dir
        self._make_postfix_dirs()
        never = "error:ghostwatch test stack never delivers outside its test domains"
        main_cf = f"""\
# Generated by tests/mailstack.py for one throwaway test stack; see MAILSTACK.md.
compatibility_level = 3.6
queue_directory = {pf / "queue"}
data_directory = {pf / "data"}
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-ghostwatch
# Without maillog_file_prefixes covering maillog_file, Postfix exits silently.
maillog_file_prefixes = {self.root}
maillog_file = {self.postfix_log}
myhostname = mail.{self.domains[0]}
mydomain = {self.domains[0]}
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = $myhostname ESMTP ghostwatch-test
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
recipient_delimiter = +
virtual_mailbox_domains = {" ".join(self.domains)}
virtual_transport = lmtp:inet:127.0.0.1:{self.lmtp_port}
# No recipient map: Postfix accepts any address at a test domain and Dovecot's
# LMTP rejects unknown users, so the sender gets a real RFC 3464 bounce instead
# of an SMTP-time rejection.

# Fixed refusals at RCPT time, so tests see a real Postfix answer 451 (greylisting)
# and 421 (closing the connection) for these two recipients; access(5).
smtpd_recipient_restrictions =
    check_recipient_access inline:{{ {{ {GREYLISTED} = 451 4.7.1 Greylisted, try again later }}, {{ {CLOSING} = 421 4.3.2 Service shutting down }} }}

# Anything else bounces instead of leaving the machine.
default_transport = {never}
relay_transport = {never}
local_transport = {never}
# Mail deferred while Dovecot is stopped is retried within seconds.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
"""
        (pf / "main.cf").write_text(main_cf)

        # Stock services, chroot off (the queue dir has no /etc, /lib inside),
        # and smtpd on our loopback port instead of *:25.
        lines: list[str] = []
        for line in _MASTER_CF_DIST.read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            if line[0].isspace():  # continuation of the previous service
                lines.append(line)
                continue
            fields = line.split()
            if fields[:2] == ["smtp", "inet"]:
                lines.append(f"127.0.0.1:{self.smtp_port} inet n - n - - smtpd")
                continue
            fields[4] = "n"
            lines.append("  ".join(fields))
        lines += self._submission_services()
        (pf / "master.cf").write_text("\n".join(lines) + "\n")
        # Postfix won't read a config file modified within the current second (it
        # might be half-written) and re-checks every 0.3 s; backdating the files
        # saves up to 2 s per start.
        past = time.time() - 10
        for name in ("main.cf", "master.cf"):
            os.utime(pf / name, (past, past))

    @property
    def _sasl_socket(self) -> Path:
        return self._base_dir / "auth-postfix"

    def _submission_services(self) -> list[str]:
        """master.cf lines for the optional submission (and smtps) listeners."""
        if not self.submission:
            return []
        common = [
            "  -o smtpd_sasl_auth_enable=yes",
            "  -o smtpd_sasl_type=dovecot",
            f"  -o smtpd_sasl_path={self._sasl_socket}",
            # As at a provider: nothing without AUTH, and AUTH does not make the
            # stack an open relay, so a foreign domain is refused at RCPT time.
            "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject",
            "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject",
            "  -o smtpd_recipient_restrictions=reject_unauth_destination",
        ]
        tls: list[str] = []
        if self.tls_chain is not None:
            chain = self.postfix_dir / "tls-chain.pem"
            shutil.copyfile(self.tls_chain, chain)
            chain.chmod(0o600)
            tls = [f"  -o smtpd_tls_chain_files={chain}", "  -o smtpd_tls_auth_only=yes"]
        lines = [
            f"127.0.0.1:{self.submission_port} inet n - n - - smtpd",
            "  -o syslog_name=postfix-ghostwatch/submission",
            *common,
        ]
        if self.tls_chain is not None:
            lines += [*tls, "  -o smtpd_tls_security_level=encrypt"]
            lines += [
                f"127.0.0.1:{self.smtps_port} inet n - n - - smtpd",
                "  -o syslog_name=postfix-ghostwatch/smtps",
                *common,
                *tls,
                "  -o smtpd_tls_wrappermode=yes",
                "  -o smtpd_tls_security_level=encrypt",
            ]
        return lines

    def _make_postfix_dirs(self) -> None:
        """Create queue and data directories as postfix-files(5) describes them.

        ``postfix start`` would do the same through post-install, which takes
        about 2 s of shell and postconf calls; with the directories in place and
        a ``quick-start`` file, Postfix starts in a few hundredths of a second.
        """
        values = {
            "$queue_directory": self.postfix_dir / "queue",
            "$data_directory": self.postfix_dir / "data",
        }
        users = {"root": 0, "$mail_owner": _uid_of("postfix")}
        groups = {"-": 0, "$setgid_group": _gid_of("postdrop")}
        for line in _POSTFIX_FILES.read_text().splitlines():
            fields = line.split(":")
            if len(fields) < 5 or fields[1] != "d":
                continue
            base, _, rest = fields[0].partition("/")
            if base not in values:
                continue
            path = values[base] / rest if rest else values[base]
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, users[fields[2]], groups[fields[3]])
            path.chmod(int(fields[4], 8))

    def _write_passwd_file(self, user: _User) -> None:
        self._passwd_dir.mkdir(parents=True, exist_ok=True)
        path = self._passwd_dir / user.address
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(
            f"{user.address}:{user.password_hash}:{MAIL_UID}:{MAIL_GID}::{user.home}::\n"
        )
        tmp.chmod(0o644)
        # Dovecot notices a changed file by mtime or size; a new password keeps
        # the size, so make sure the mtime moves.
        stamp = max(int(time.time()), int(path.stat().st_mtime) + 1) if path.exists() else None
        if stamp is not None:
            os.utime(tmp, (stamp, stamp))
        tmp.replace(path)

    # ---- users -------------------------------------------------------------

    def add_user(self, address: str, password: str) -> None:
        """Create (or re-password) a mailbox; works before and after :meth:`start`.

        A new user can log in at once. A changed password may take up to a
        second to apply: Dovecot re-checks a known passwd-file once a second.
        """
        address = address.lower()
        local, _, domain = address.rpartition("@")
        if not local or domain not in self.domains:
            raise ValueError(f"{address!r} is not at one of this stack's domains {self.domains}")
        if "+" in local:
            raise ValueError(f"{address!r}: '+' is the recipient delimiter")
        result = subprocess.run(
            # -O: don't read /etc/dovecot; hashing needs no configuration.
            [_program("doveadm"), "-O", "pw", "-s", "SHA512-CRYPT", "-p", password],
            capture_output=True,
            text=True,
            check=True,
        )
        home = self.mail_dir / domain / local
        with self._users_lock:
            self._users[address] = _User(address, password, result.stdout.strip(), home)
            self.mail_dir.mkdir(parents=True, exist_ok=True)
            os.chown(self.mail_dir, MAIL_UID, MAIL_GID)
            home.mkdir(parents=True, exist_ok=True)
            for path in (home.parent, home):
                os.chown(path, MAIL_UID, MAIL_GID)
            if self._started:
                self._write_passwd_file(self._users[address])

    def _user(self, address: str) -> _User:
        try:
            return self._users[address.lower()]
        except KeyError:
            raise KeyError(f"{address!r} is not a user of this MailStack") from None

    def home(self, address: str) -> Path:
        """The user's home directory (Maildir is ``home / "Maildir"``)."""
        return self._user(address).home

    def set_vacation(self, address: str, subject: str, body: str, days: int = 1) -> None:
        """Make ``address`` answer incoming mail with a Sieve vacation reply (RFC 5230).

        Also forgets whom the user already answered, so a fresh vacation replies
        again. Pigeonhole only replies when the user's address is in To/Cc and
        the message is not automatic (Auto-Submitted, Precedence: bulk, lists).
        """
        user = self._user(address)
        script = (
            'require ["vacation"];\n'
            f"vacation :days {int(days)} :subject {_sieve_string(subject)} "
            f"{_sieve_string(body)};\n"
        )
        self._remove_sieve_state(user)
        path = user.home / ".dovecot.sieve"
        tmp = user.home / ".dovecot.sieve.tmp"
        tmp.write_text(script)
        os.chown(tmp, MAIL_UID, MAIL_GID)
        tmp.replace(path)

    def clear_vacation(self, address: str) -> None:
        """Remove the user's Sieve script: no more vacation replies."""
        user = self._user(address)
        (user.home / ".dovecot.sieve").unlink(missing_ok=True)
        self._remove_sieve_state(user)

    @staticmethod
    def _remove_sieve_state(user: _User) -> None:
        # The compiled script is only rebuilt when the source's mtime is newer,
        # which a rewrite within the same second is not. lda-dupes remembers
        # whom vacation already answered.
        for name in (".dovecot.svbin", ".dovecot.lda-dupes"):
            (user.home / name).unlink(missing_ok=True)

    # ---- IMAP / SMTP ---------------------------------------------------------

    def imap(self, address: str) -> IMAPClient:
        """A logged-in IMAP connection for ``address``; the caller logs out."""
        user = self._user(address)
        client = IMAPClient(self.host, port=self.imap_port, ssl=False, timeout=30)
        try:
            client.login(user.address, user.password)
        except BaseException:
            client.shutdown()
            raise
        return client

    def append(
        self,
        address: str,
        folder: str,
        raw: bytes,
        when: datetime,
        flags: Sequence[str | bytes] = (),
    ) -> int:
        """APPEND ``raw`` with internal date ``when`` (creating ``folder``); return its UID.

        ``when`` must be timezone-aware. Put a matching ``Date:`` header in ``raw``.
        """
        if when.tzinfo is None:
            raise ValueError("append() needs a timezone-aware datetime")
        client = self.imap(address)
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            response = client.append(folder, raw, flags=tuple(flags), msg_time=when)
        finally:
            client.logout()
        match = _APPENDUID_RE.search(response)
        if match is None:
            raise MailStackError(f"APPEND response without APPENDUID: {response!r}")
        return int(match.group(2))

    def deliver(
        self, mail_from: str, rcpts: Sequence[str], raw: bytes
    ) -> dict[str, tuple[int, bytes]]:
        """Send ``raw`` through Postfix over SMTP; return the refused recipients.

        Delivery is asynchronous: use :meth:`wait_for_messages` to see it arrive.
        """
        with smtplib.SMTP(self.host, self.smtp_port, timeout=30) as smtp:
            return smtp.sendmail(mail_from, list(rcpts), raw)

    def messages(self, address: str, folder: str) -> list[bytes]:
        """Every message in ``folder`` now (none if the folder does not exist)."""
        client = self.imap(address)
        try:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            fetched = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
            return [bytes(fetched[uid][b"BODY[]"]) for uid in sorted(fetched)]
        finally:
            client.logout()

    def wait_for_messages(
        self, address: str, folder: str, count: int, timeout: float = 20
    ) -> list[bytes]:
        """Poll until ``folder`` holds at least ``count`` messages; return them all.

        Messages are full RFC 822 bytes in UID order, fetched with BODY.PEEK[]
        so \\Seen is not set. Raises TimeoutError (with the mail logs) otherwise.
        """
        deadline = time.monotonic() + timeout
        client = self.imap(address)
        try:
            while True:
                if client.folder_exists(folder):
                    client.select_folder(folder, readonly=True)
                    uids = client.search("ALL")
                    if len(uids) >= count:
                        fetched = client.fetch(uids, ["BODY.PEEK[]"])
                        return [bytes(fetched[uid][b"BODY[]"]) for uid in sorted(fetched)]
                    client.unselect_folder()
                else:
                    uids = []
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{address} {folder}: {len(uids)} of {count} messages after "
                        f"{timeout} s\n" + self.log_tails()
                    )
                time.sleep(0.1)
        finally:
            client.logout()

    # ---- mailbox state ---------------------------------------------------------

    def doveadm(self, *args: str) -> str:
        """Run ``doveadm -c <this stack's config> ARGS``; return stdout."""
        result = subprocess.run(
            [_program("doveadm"), "-c", str(self.dovecot_conf), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise MailStackError(
                f"doveadm {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result.stdout

    def uidvalidity(self, address: str, folder: str) -> int:
        """The folder's current UIDVALIDITY, as Dovecot reports it."""
        out = self.doveadm(
            "-f", "flow", "mailbox", "status", "-u", address.lower(), "uidvalidity", folder
        )
        return int(out.strip().split("=", 1)[1])

    def set_uidvalidity(self, address: str, folder: str, value: int) -> None:
        """Give ``folder`` a new UIDVALIDITY (RFC 3501 section 2.3.1.1), keeping its mail.

        Clients must then treat every cached UID of the folder as void. Dovecot
        disconnects sessions that have the folder selected.
        """
        if not 0 < value < 2**32:
            raise ValueError("UIDVALIDITY is a non-zero 32-bit number")
        self.doveadm(
            "mailbox", "update", "-u", address.lower(), "--uid-validity", str(value), folder
        )

    def write_maildir(
        self,
        address: str,
        folder: str,
        messages: Iterable[MaildirMessage | tuple[bytes, datetime]],
    ) -> int:
        """Write messages straight into ``folder``'s Maildir; return how many.

        The fast path for big benchmark mailboxes (tens of thousands of messages
        per second, against about 250/s for APPEND). Must run before Dovecot first
        opens the folder, which then indexes it on first SELECT. Each file's
        mtime, which Dovecot reports as INTERNALDATE, is ``when``; a message
        without a ``Date:`` header gets one from ``when``. Dovecot numbers new
        files in file-name order, and names start with ``when``, so UIDs follow
        ``when`` whatever the input order (ties keep input order).
        """
        maildir = self._maildir_path(address, folder)
        if (maildir / "dovecot-uidlist").exists():
            raise MailStackError(
                f"Dovecot already opened {folder!r} of {address}; write_maildir() must "
                "run before the first SELECT/APPEND/delivery to it"
            )
        home = self._user(address).home
        created: list[Path] = []
        for path in (home / "Maildir", maildir):
            for sub in ("", "cur", "new", "tmp"):
                if not (path / sub).exists():
                    (path / sub).mkdir(parents=True)
                    created.append(path / sub)
        if folder.upper() != "INBOX":
            marker = maildir / "maildirfolder"
            marker.touch()
            created.append(marker)
        for path in created:
            os.chown(path, MAIL_UID, MAIL_GID)

        cur = maildir / "cur"
        pid = os.getpid()
        written = 0
        for item in messages:
            msg = item if isinstance(item, MaildirMessage) else MaildirMessage(*item)
            if msg.when.tzinfo is None:
                raise ValueError("write_maildir() needs timezone-aware datetimes")
            raw = msg.raw
            if not _has_header(raw, b"Date"):
                raw = b"Date: " + email.utils.format_datetime(msg.when).encode() + b"\r\n" + raw
            letters = "".join(sorted(self._maildir_flag(f) for f in msg.flags))
            stamp = msg.when.timestamp()
            self._maildir_seq += 1
            name = (
                # Zero-padded so that ties within one second sort in input order.
                f"{int(stamp)}.M{round(stamp % 1 * 1e6):06d}P{pid}Q{self._maildir_seq:09d}"
                f".ghostwatch,S={len(raw)}:2,{letters}"
            )
            path = cur / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, raw)
                os.fchown(fd, MAIL_UID, MAIL_GID)
            finally:
                os.close(fd)
            os.utime(path, (stamp, stamp))
            written += 1
        return written

    def _maildir_path(self, address: str, folder: str) -> Path:
        maildir = self._user(address).home / "Maildir"
        if folder.upper() == "INBOX":
            return maildir
        if "." in folder:
            raise ValueError(f"{folder!r}: '.' is Maildir++'s on-disk separator")
        # Maildir++ layout: ".Parent.Child", names in modified UTF-7 (RFC 3501 5.1.3).
        encoded = imap_utf7.encode(folder)
        on_disk = encoded.decode("ascii") if isinstance(encoded, bytes) else str(encoded)
        return maildir / ("." + on_disk.replace(self.separator, "."))

    @staticmethod
    def _maildir_flag(flag: str) -> str:
        try:
            return _MAILDIR_FLAGS[flag.lower()]
        except KeyError:
            raise ValueError(f"write_maildir() supports only system flags, not {flag!r}") from None

    def processes(self) -> list[int]:
        """PIDs of this stack's live processes (empty once stopped)."""
        pids: list[int] = []
        if self._dovecot is not None:
            pids += _process_group_alive(self._dovecot.pid)
        if self._postfix_pid is not None:
            pids += _process_group_alive(self._postfix_pid)
        return pids
