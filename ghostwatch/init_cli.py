"""``ghostwatch init``: the setup wizard that writes a first config file.

It asks for (or takes from flags) the address, your name and how to obtain the
password, finds the provider's servers (:mod:`ghostwatch.providers`), tests the login,
and writes a config file readable by you alone. Registered by :mod:`ghostwatch.cli`.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import sys
import tempfile
import textwrap
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar

import click

from ghostwatch import __version__
from ghostwatch.addresses import check_address
from ghostwatch.cliutil import EXIT_CONFIG, EXIT_ERROR, Context
from ghostwatch.config import (
    DEFAULT_SEARCH_PATHS,
    AccountSettings,
    ServerSettings,
    Settings,
    is_loopback,
    parse_config,
)
from ghostwatch.errors import ConfigError, GhostwatchError
from ghostwatch.providers import Provider, all_providers, by_address, by_mx, config_snippet

__all__ = [
    "COMMANDS",
    "Answers",
    "Endpoint",
    "PasswordSource",
    "compose_config",
    "default_account_name",
    "init",
    "mx_hosts",
    "try_login",
    "validate",
    "write_private",
]

T = TypeVar("T")
SourceKind = Literal["command", "credential", "env", "plaintext"]

_SECURITIES = ("tls", "starttls", "none")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Stands in for the password lines while :func:`config_snippet` builds the block.
_PLACEHOLDER = "@@ghostwatch-init-password-source@@"
#: Where the system unit's commented LoadCredential= lines expect credential files.
_SYSTEM_CREDENTIALS = Path("/etc/ghostwatch/credentials")
_AUTH_HEADLINE = {
    "password": "Sign in with your mailbox password.",
    "app_password": "This provider needs an app password, not your usual password.",
    "oauth2": "This provider needs OAuth2 to send: a token_command that prints an access token.",
    "app_password_or_oauth2": "Use an app password, or send with OAuth2 (a token_command).",
}


# -- values and their checks ---------------------------------------------------------


def _toml(value: str) -> str:
    """``value`` as a TOML basic string (control characters escaped)."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _no_controls(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"{what} must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{what} must be one line, without control characters")
    return value


def _check_address(value: str) -> str:
    return check_address(value)


def _check_name(value: str) -> str:
    return _no_controls(value, "your name")


def _check_account_name(value: str) -> str:
    value = value.strip()
    if not _NAME_RE.match(value):
        raise ValueError(f"{value!r}: use 1 to 64 letters, digits, '.', '_' or '-'")
    return value


def _check_host(value: str) -> str:
    value = _no_controls(value, "the host name")
    if any(c.isspace() or c in "/@" for c in value):
        raise ValueError(f"{value!r} is not a host name")
    return value


def _check_command(value: str) -> str:
    return _no_controls(value, "the command")


def _check_line(value: str) -> str:
    return _no_controls(value, "the value")


def _check_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a port (1 to 65535)")
    return value


def _check_env(value: str) -> str:
    value = value.strip()
    if not _ENV_RE.match(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


def _check_credential(value: str) -> str:
    value = value.strip()
    if not _NAME_RE.match(value) or value in (".", ".."):
        raise ValueError(f"{value!r}: a credential name is letters, digits, '.', '_' or '-'")
    return value


def default_account_name(address: str) -> str:
    """The domain's first label (``alice@studio.example.com`` -> ``studio``), made a
    valid account name."""
    first = address.rpartition("@")[2].split(".", 1)[0]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", first)[:64].strip("_.")
    return name or "mail"


def default_env_name(account_name: str) -> str:
    """``GHOSTWATCH_<ACCOUNT>_PASSWORD``, as :func:`config_snippet` names it."""
    env = "".join(c if c.isascii() and c.isalnum() else "_" for c in account_name.upper())
    return f"GHOSTWATCH_{env}_PASSWORD"


def mx_hosts(domain: str) -> list[str]:
    """``domain``'s MX hosts, most preferred first; empty without dnspython or on any
    DNS trouble (the wizard then asks for the servers)."""
    try:
        # Optional: ghostwatch does not depend on dnspython; use it when it is there.
        resolver = importlib.import_module("dns.resolver")
    except ImportError:
        return []
    try:
        answer = resolver.resolve(domain, "MX", lifetime=5.0)
        records = sorted(answer, key=lambda r: int(r.preference))
        return [str(r.exchange).rstrip(".") for r in records]
    except Exception:
        # NXDOMAIN, a timeout, no network: no preset found, the wizard asks instead.
        return []


# -- asking ----------------------------------------------------------------------------


class _Asker:
    """Takes a value from its flag, else asks (interactive), else uses the default or
    fails naming the flag."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def value(
        self,
        given: T | None,
        flag: str,
        question: str,
        check: Callable[[T], T],
        *,
        default: T | None = None,
        kind: click.ParamType[Any] | None = None,
    ) -> T:
        if given is not None:
            try:
                return check(given)
            except ValueError as exc:
                raise click.UsageError(f"{flag}: {exc}") from None
        if not self.interactive:
            if default is not None:
                return check(default)
            raise click.UsageError(
                f"missing {flag} (nothing is asked with --yes or without a terminal)"
            )

        def proc(raw: object) -> T:
            converted = kind.convert(raw, None, None) if kind is not None else raw
            try:
                return check(converted)  # type: ignore[arg-type]
            except ValueError as exc:
                # click.prompt shows a UsageError and asks again.
                raise click.UsageError(str(exc)) from None

        answer: T = click.prompt(question, default=default, value_proc=proc)
        return answer

    def confirm(self, question: str, *, default: bool) -> bool:
        return click.confirm(question, default=default) if self.interactive else default


# -- what the wizard collects ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A custom server; ``security`` may also be ``none`` (loopback only)."""

    host: str
    port: int
    security: str


@dataclass(frozen=True, slots=True)
class PasswordSource:
    kind: SourceKind
    value: str

    @property
    def key(self) -> str:
        return {
            "command": "password_command",
            "credential": "password_credential",
            "env": "password_env",
            "plaintext": "password",
        }[self.kind]

    def lines(self) -> list[str]:
        if self.kind == "plaintext":
            return [
                "# Plaintext: accepted only while this file is chmod 600; prefer password_command.",
                f"password = {_toml(self.value)}",
            ]
        return [f"{self.key} = {_toml(self.value)}"]


@dataclass(frozen=True, slots=True)
class Answers:
    address: str
    name: str
    account_name: str
    provider: Provider | None  # None: a custom server
    imap: Endpoint
    smtp: Endpoint
    username: str
    source: PasswordSource
    token_command: str | None


def _server_flags_given(*values: object) -> bool:
    return any(v is not None for v in values)


def _find_provider(
    ask: _Asker, address: str, provider_key: str | None, custom_flags: bool
) -> tuple[Provider | None, Provider | None]:
    """The preset to use (None: a custom server), and the one found, whose servers are
    the defaults when you decline it."""
    presets = {p.key: p for p in all_providers()}
    if provider_key is not None:
        if provider_key != "custom" and custom_flags:
            raise click.UsageError(
                "--imap-*/--smtp-* describe a custom server: use them with --provider custom"
            )
        chosen = presets.get(provider_key)
        return chosen, chosen
    if custom_flags:
        return None, None
    found = by_address(address)
    how = "from the address"
    if found is None:
        domain = address.rpartition("@")[2]
        hosts = mx_hosts(domain)
        found = by_mx(hosts)
        how = f"from {domain}'s mail servers, MX {hosts[0]}" if hosts else ""
    if found is None:
        if not ask.interactive:
            raise click.UsageError(
                f"no preset matches {address}: give --provider KEY, or your servers with "
                "--imap-host and --smtp-host"
            )
        click.echo("No preset matches this address: tell me your mail servers.")
        return None, None
    click.echo(f"Provider: {found.name} ({how}).")
    click.echo(f"  IMAP {found.imap.host}:{found.imap.port} ({found.imap.security})")
    click.echo(f"  SMTP {found.smtp.host}:{found.smtp.port} ({found.smtp.security})")
    if not ask.confirm("Use these servers?", default=True):
        return None, found
    return found, found


def _endpoint(
    ask: _Asker,
    proto: Literal["imap", "smtp"],
    given: tuple[str | None, int | None, str | None],
    fallback: Endpoint,
) -> Endpoint:
    """A custom server's host, security and port; the host's default is offered only at
    the prompt, since a script must name its servers."""
    host_flag, port_flag, security_flag = given
    label = proto.upper()
    host = ask.value(
        host_flag,
        f"--{proto}-host",
        f"{label} server",
        _check_host,
        default=fallback.host if ask.interactive else None,
    )

    def check_security(value: str) -> str:
        if value not in _SECURITIES:
            raise ValueError(f"choose one of {', '.join(_SECURITIES)}")
        if value == "none" and not is_loopback(host):
            raise ValueError(
                f'"none" sends the password in clear text: only for a loopback host, not {host}'
            )
        return value

    security = ask.value(
        security_flag,
        f"--{proto}-security",
        f"{label} security (tls, starttls, or none for loopback)",
        check_security,
        default=fallback.security,
        kind=click.Choice(_SECURITIES),
    )
    if security == fallback.security:
        port_default = fallback.port
    elif proto == "imap":
        port_default = 993 if security == "tls" else 143
    else:
        port_default = 465 if security == "tls" else 587
    port = ask.value(
        port_flag,
        f"--{proto}-port",
        f"{label} port",
        _check_port,
        default=port_default,
        kind=click.IntRange(1, 65535),
    )
    return Endpoint(host, port, security)


def _custom_servers(
    ask: _Asker,
    address: str,
    imap_flags: tuple[str | None, int | None, str | None],
    smtp_flags: tuple[str | None, int | None, str | None],
    suggested: Provider | None,
) -> tuple[Endpoint, Endpoint]:
    domain = address.rpartition("@")[2]
    if suggested is not None:
        imap_default = Endpoint(suggested.imap.host, suggested.imap.port, suggested.imap.security)
        smtp_default = Endpoint(suggested.smtp.host, suggested.smtp.port, suggested.smtp.security)
    else:
        imap_default = Endpoint(f"imap.{domain}", 993, "tls")
        smtp_default = Endpoint(f"smtp.{domain}", 465, "tls")
    imap = _endpoint(ask, "imap", imap_flags, imap_default)
    smtp = _endpoint(ask, "smtp", smtp_flags, smtp_default)
    return imap, smtp


def _explain_auth(provider: Provider) -> None:
    click.echo(_AUTH_HEADLINE[provider.auth])
    for line in textwrap.wrap(provider.notes, width=86, break_on_hyphens=False):
        click.echo(f"  {line}")


def _token_command(ask: _Asker, provider: Provider | None, given: str | None) -> str | None:
    if provider is None:
        # A custom server may take XOAUTH2 too; only a flag says so.
        return _check_command(given) if given is not None else None
    if provider.auth == "oauth2":
        return ask.value(
            given,
            "--token-command",
            "SMTP token_command (a command printing an OAuth2 access token)",
            _check_command,
        )
    if provider.auth == "app_password_or_oauth2":
        if given is not None or (
            ask.interactive and ask.confirm("Send with OAuth2 (token_command)?", default=False)
        ):
            return ask.value(given, "--token-command", "SMTP token_command", _check_command)
        return None
    if given is not None:
        raise click.UsageError(f"--token-command: {provider.name} does not sign in with OAuth2")
    return None


_SOURCE_HELP = """How should ghostwatch get the password?
  command     a command that prints it, e.g. a password manager (pass, secret-tool)
  credential  a systemd credential (LoadCredential=), for the service
  env         an environment variable
  plaintext   typed now and stored in the config file (discouraged)"""


def _password_source(
    ask: _Asker,
    account_name: str,
    command: str | None,
    credential: str | None,
    env: str | None,
) -> PasswordSource:
    given = [
        (k, v)
        for k, v in (("command", command), ("credential", credential), ("env", env))
        if v is not None
    ]
    if len(given) > 1:
        raise click.UsageError(
            "give only one of --password-command, --password-credential, --password-env"
        )
    if given:
        kind, value = given[0]
    elif not ask.interactive:
        raise click.UsageError(
            "missing the password source: give --password-command, --password-credential "
            "or --password-env"
        )
    else:
        click.echo(_SOURCE_HELP)
        kind = click.prompt(
            "Password source",
            type=click.Choice(["command", "credential", "env", "plaintext"]),
            default="command",
        )
        value = None
    if kind == "command":
        return PasswordSource(
            "command",
            ask.value(
                value,
                "--password-command",
                "password_command (prints the password)",
                _check_command,
                default=f"pass show mail/{account_name}",
            ),
        )
    if kind == "credential":
        return PasswordSource(
            "credential",
            ask.value(
                value,
                "--password-credential",
                "systemd credential name",
                _check_credential,
                default=f"{account_name}-password",
            ),
        )
    if kind == "env":
        return PasswordSource(
            "env",
            ask.value(
                value,
                "--password-env",
                "environment variable",
                _check_env,
                default=default_env_name(account_name),
            ),
        )
    click.echo("The password will be stored in clear text in the config file (mode 0600).")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return PasswordSource("plaintext", password)


# -- the file --------------------------------------------------------------------------


def _account_block(a: Answers) -> str:
    if a.provider is not None:
        block = config_snippet(
            a.provider,
            account_name=a.account_name,
            address=a.address,
            password_command=_PLACEHOLDER,
            token_command=a.token_command,
        )
    else:
        block = _custom_block(a)
    placeholder = f"password_command = {_toml(_PLACEHOLDER)}"
    lines: list[str] = []
    for line in block.splitlines():
        if line == placeholder:
            lines += a.source.lines()
        elif line == f"username = {_toml(a.address)}":
            lines.append(f"username = {_toml(a.username)}")
        else:
            lines.append(line)
            if line == f"address = {_toml(a.address)}":
                # The From header of every follow-up: "Alice Rossi <alice@...>".
                lines.append(f"display_name = {_toml(a.name)}")
    return "\n".join(lines) + "\n"


def _custom_block(a: Answers) -> str:
    def server(section: str, e: Endpoint) -> list[str]:
        return [
            f"[accounts.{section}]",
            f"host = {_toml(e.host)}",
            f"port = {e.port}",
            f"security = {_toml(e.security)}",
            f"username = {_toml(a.address)}",
        ]

    lines = [
        "# Your own mail server.",
        "[[accounts]]",
        f"name = {_toml(a.account_name)}",
        f"address = {_toml(a.address)}",
        "",
        *server("imap", a.imap),
        f"password_command = {_toml(_PLACEHOLDER)}",
        "# A server with a private CA: trust its certificate with",
        '# ca_file = "/etc/ssl/my-ca.pem"',
        "",
        *server("smtp", a.smtp),
    ]
    if a.token_command is not None:
        lines += [
            "# OAuth 2.0 (SASL XOAUTH2): the command prints a fresh access token.",
            f"token_command = {_toml(a.token_command)}",
        ]
    else:
        lines.append(f"password_command = {_toml(_PLACEHOLDER)}")
    return "\n".join(lines) + "\n"


def compose_config(a: Answers) -> str:
    """The whole config file for ``a``."""
    sent_copy = []
    if a.provider is not None and a.provider.saves_sent_copy and a.provider.key != "gmail":
        sent_copy = [
            f"# {a.provider.name} files what it sends in Sent itself: avoid a second copy with",
            '# save_to_sent = "never"',
        ]
    today = datetime.now().astimezone().date()
    parts = [
        f"""\
# ghostwatch configuration, written by `ghostwatch init` ({__version__}) on {today}.
# config.example.toml documents every key. Check this file with
# `ghostwatch check-config`, and the logins with `ghostwatch doctor`.

[database]
# Default: $STATE_DIRECTORY/ghostwatch.db under systemd, else the XDG state directory
# (~/.local/state/ghostwatch/ghostwatch.db). PostgreSQL, to run several instances:
# url = "postgresql://user@host/dbname"

[profile]
# Who you are in the follow-ups ghostwatch writes for you.
name = {_toml(a.name)}
# phone = ""
# signature = ""
# payment_details = ""   # how clients pay you (IBAN, PayPal, ...)
""",
        _account_block(a),
        "\n".join(
            [
                "[sending]",
                "# auto_send is off: every follow-up waits for you (`ghostwatch queue`, then",
                '# `ghostwatch approve ID`); true lets steps with mode = "auto" go on their own.',
                "# auto_send = false",
                "# Send nothing, show what would go out (like `ghostwatch send --dry-run`):",
                "# dry_run = true",
                *sent_copy,
            ]
        )
        + "\n",
    ]
    return "\n".join(parts)


def validate(text: str, path: Path) -> Settings:
    """Parse ``text`` as ghostwatch will read it from ``path`` (mode 0600); errors name
    ``path``."""
    with tempfile.TemporaryDirectory(prefix="ghostwatch-init-") as tmp:
        # parse_config looks at the file's mode when it holds a plaintext password.
        probe = Path(tmp) / path.name
        probe.write_text(text, encoding="utf-8")
        probe.chmod(0o600)
        try:
            return parse_config(text.encode("utf-8"), probe)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(str(probe), str(path))) from None


def write_private(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` to ``path``, mode 0600, in one step: a temporary file next to it is
    linked into place (never replacing an existing file) or, with ``force``, renamed."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    fd, tmp = tempfile.mkstemp(prefix=".ghostwatch-init-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise  # the caller says so; never fall through to a second attempt
            except OSError:
                # No hard links on this file system: create exclusively instead.
                with os.fdopen(
                    os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                    "w",
                    encoding="utf-8",
                ) as out:
                    out.write(text)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp)


# -- the login test --------------------------------------------------------------------


def _password_for_test(server: ServerSettings, where: str, config_path: Path, ask: _Asker) -> str:
    """The password the daemon would use; for a systemd credential outside systemd,
    the credential file where the units load it from, else a typed one."""
    from ghostwatch.credentials import resolve_password

    name = server.password_credential
    if name is None or os.environ.get("CREDENTIALS_DIRECTORY"):
        return resolve_password(server, where)
    for directory in (config_path.parent / "credentials", _SYSTEM_CREDENTIALS):
        candidate = directory / name
        with suppress(OSError):
            if candidate.is_file() and os.access(candidate, os.R_OK):
                copy = server.model_copy(
                    update={"password_credential": None, "password_file": candidate}
                )
                return resolve_password(copy, where)
    if ask.interactive:
        typed: str = click.prompt(
            f"Password, to test the login (not saved; the service reads credential {name!r})",
            hide_input=True,
        )
        return typed
    raise ConfigError(
        f"password_credential {name!r}: no $CREDENTIALS_DIRECTORY and no file "
        f"{_SYSTEM_CREDENTIALS / name} to test the login with; create it (see below) "
        "or pass --no-check"
    )


def try_login(account: AccountSettings, config_path: Path, ask: _Asker) -> list[str]:
    """Log in to IMAP (and list folders) and SMTP as the daemon will; print what was
    found and return the failures. Sends nothing, changes nothing."""
    from ghostwatch.imap import connect
    from ghostwatch.smtp import check_login

    click.echo("Testing the login (nothing is sent, the mailbox is not changed)...")
    failures: list[str] = []
    imap = account.imap
    password = ""
    try:
        password = _password_for_test(imap, f"{account.name}/imap", config_path, ask)
        session = connect(account, password)
    except GhostwatchError as exc:
        failures.append(str(exc))
        click.echo(f"  IMAP: FAILED: {exc}")
    else:
        try:
            click.echo(
                f"  IMAP {imap.host}:{imap.effective_port()} ({imap.security.value}): login OK"
            )
            roles = session.discover_folders()
            sent, drafts = roles.get("sent"), roles.get("drafts")
            click.echo(
                f"  Sent folder: {sent!r}"
                if sent
                else "  Sent folder: none found; add its name to [accounts.imap] folders"
            )
            click.echo(f"  Drafts folder: {drafts!r}" if drafts else "  Drafts folder: none found")
        except Exception as exc:
            # Whatever the server does wrong here, the test failed; say so, no traceback.
            failures.append(f"listing folders: {exc}")
            click.echo(f"  folders: FAILED: {exc}")
        finally:
            session.logout()
    smtp = account.smtp
    if smtp is not None and (password or smtp.token_command):
        ok, message = check_login(account, password, token_command=smtp.token_command)
        # The message names the host and port itself.
        click.echo(f"  SMTP: {message}" if ok else f"  SMTP: FAILED: {message}")
        if not ok:
            failures.append(message)
    elif smtp is not None:
        click.echo("  SMTP: not tested (no password)")
    return failures


# -- next steps ------------------------------------------------------------------------


def _next_steps(a: Answers, path: Path, default_path: Path) -> str:
    gw = "ghostwatch" if path == default_path else f"ghostwatch --config {shlex.quote(str(path))}"
    lines = ["", "Next steps:"]
    src = a.source
    if src.kind == "command":
        lines += [
            f"  ghostwatch gets the password by running: {src.value}",
            "  To keep it in a password manager:",
            f"    pass insert mail/{a.account_name}",
            f'      then password_command = "pass show mail/{a.account_name}"',
            f"    secret-tool store --label='ghostwatch {a.account_name}' service ghostwatch "
            f"account {a.account_name}",
            '      then password_command = "secret-tool lookup service ghostwatch account '
            f'{a.account_name}"',
        ]
    elif src.kind == "credential":
        cred = _SYSTEM_CREDENTIALS / src.value
        lines += [
            f"  The service reads the password from the systemd credential {src.value!r}:",
            f"    sudo install -d -m 0700 {_SYSTEM_CREDENTIALS}",
            f"    systemd-ask-password 'Mail password:' | sudo tee {cred} >/dev/null",
            f"    sudo chmod 0600 {cred}",
            "  and in the unit (systemctl edit ghostwatch), matching password_credential:",
            f"    LoadCredential={src.value}:{cred}",
            f"  (user unit: LoadCredential={src.value}:%E/ghostwatch/credentials/{src.value})",
        ]
    elif src.kind == "env":
        lines += [
            f"  Set {src.value} before running ghostwatch; better, switch to password_command",
            f'  (e.g. "pass show mail/{a.account_name}") or a systemd credential.',
        ]
    else:
        lines += [
            f"  The password is in {path} in clear text: keep it chmod 600, or move it to",
            f'  a password manager (password_command = "pass show mail/{a.account_name}").',
        ]
    if a.token_command is not None:
        lines.append(f"  SMTP signs in with an OAuth2 access token from: {a.token_command}")
    lines += [
        f"  {gw} doctor",
        "      checks the config, the database and both logins",
        f"  {gw} sync",
        "      fetches mail headers and shows who owes you a reply (then: status)",
        f"  {gw} send --dry-run",
        "      shows what would go out; sends nothing",
        "  Then run it as a service of yours (see systemd/ghostwatch-user.service):",
        "    install -D -m 0644 systemd/ghostwatch-user.service "
        "~/.config/systemd/user/ghostwatch.service",
        "    systemctl --user enable --now ghostwatch",
        "  or as the system service systemd/ghostwatch.service, which reads",
        "  /etc/ghostwatch/config.toml as a dynamic user: that file must be mode 0644, so",
        "  keep passwords out of it (password_credential):",
        f"    sudo install -D -m 0644 {shlex.quote(str(path))} /etc/ghostwatch/config.toml",
    ]
    return "\n".join(lines)


# -- the command -----------------------------------------------------------------------


@click.command("init")
@click.option("--address", help="Your email address.")
@click.option("--name", help="Your name, as you sign ([profile] name).")
@click.option("--account-name", help="Short account name (default: from the domain).")
@click.option(
    "--provider",
    "provider_key",
    type=click.Choice([p.key for p in all_providers()] + ["custom"]),
    help="A preset, or custom (then --imap-host and --smtp-host).",
)
@click.option("--imap-host", help="Custom IMAP server.")
@click.option("--imap-port", type=click.IntRange(1, 65535), help="Default: 993 (tls), else 143.")
@click.option("--imap-security", type=click.Choice(_SECURITIES), help="Default: tls.")
@click.option("--smtp-host", help="Custom SMTP server.")
@click.option("--smtp-port", type=click.IntRange(1, 65535), help="Default: 465 (tls), else 587.")
@click.option("--smtp-security", type=click.Choice(_SECURITIES), help="Default: tls.")
@click.option("--username", help="Login name on both servers (default: the address).")
@click.option("--password-command", help="Command printing the password (e.g. pass show ...).")
@click.option("--password-credential", help="systemd credential name (LoadCredential=).")
@click.option("--password-env", help="Environment variable holding the password.")
@click.option("--token-command", help="Command printing an OAuth2 access token (SMTP).")
@click.option("--no-check", is_flag=True, help="Do not test the login.")
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
@click.option("--yes", is_flag=True, help="Never prompt: missing values are errors.")
@click.option(
    "--interactive", is_flag=True, help="Prompt even when stdin is not a terminal (scripts)."
)
@click.pass_obj
def init(  # noqa: PLR0917 - click passes every option as a parameter
    obj: Context,
    address: str | None,
    name: str | None,
    account_name: str | None,
    provider_key: str | None,
    imap_host: str | None,
    imap_port: int | None,
    imap_security: str | None,
    smtp_host: str | None,
    smtp_port: int | None,
    smtp_security: str | None,
    username: str | None,
    password_command: str | None,
    password_credential: str | None,
    password_env: str | None,
    token_command: str | None,
    no_check: bool,
    force: bool,
    yes: bool,
    interactive: bool,
) -> None:
    """Set up ghostwatch: write a config file for your mailbox.

    Asks for your address, your name and how to obtain the password, finds your
    provider's servers (or asks for them), tests the login (unless --no-check) and
    writes --config PATH, else ~/.config/ghostwatch/config.toml, readable by you
    alone. It never overwrites a file without --force. With --yes, or when stdin is
    not a terminal, nothing is asked: give every value as a flag.
    """
    if yes and interactive:
        raise click.UsageError("--yes and --interactive contradict each other")
    ask = _Asker(not yes and (interactive or sys.stdin.isatty()))
    default_path = DEFAULT_SEARCH_PATHS[0].expanduser()
    path = (obj.config_path or default_path).expanduser().absolute()
    if path.is_dir():
        _die(f"{path} is a directory", EXIT_ERROR)
    if path.exists() and not force:
        _die(f"{path} already exists; nothing was written (--force overwrites it)", EXIT_ERROR)
    env_path = os.environ.get("GHOSTWATCH_CONFIG")
    if obj.config_path is None and env_path and Path(env_path).expanduser() != path:
        click.echo(
            f"note: $GHOSTWATCH_CONFIG is {env_path}; ghostwatch reads that file, not {path}",
            err=True,
        )

    answers = _collect(
        ask,
        address=address,
        name=name,
        account_name=account_name,
        provider_key=provider_key,
        imap_flags=(imap_host, imap_port, imap_security),
        smtp_flags=(smtp_host, smtp_port, smtp_security),
        username=username,
        token_command=token_command,
        sources=(password_command, password_credential, password_env),
    )
    text = compose_config(answers)
    try:
        settings = validate(text, path)
    except ConfigError as exc:
        _die(f"the configuration would be invalid; nothing was written:\n{exc}", EXIT_CONFIG)

    if not no_check:
        failures = try_login(settings.accounts[0], path, ask)
        if failures and not ask.confirm(
            "The login test failed. Write the config anyway?", default=False
        ):
            _die(
                "the login test failed; nothing was written (fix the above, or pass "
                "--no-check to write the file untested)",
                EXIT_ERROR,
            )
    try:
        write_private(path, text, force=force)
    except FileExistsError:
        _die(f"{path} already exists; nothing was written (--force overwrites it)", EXIT_ERROR)
    except OSError as exc:
        _die(f"cannot write {path}: {exc.strerror or exc}", EXIT_ERROR)
    click.echo(f"Wrote {path} (mode 0600).")
    click.echo(_next_steps(answers, path, default_path))


def _die(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def _collect(
    ask: _Asker,
    *,
    address: str | None,
    name: str | None,
    account_name: str | None,
    provider_key: str | None,
    imap_flags: tuple[str | None, int | None, str | None],
    smtp_flags: tuple[str | None, int | None, str | None],
    username: str | None,
    token_command: str | None,
    sources: tuple[str | None, str | None, str | None],
) -> Answers:
    """Every answer, from flags first, then prompts, in the order a person thinks."""
    addr = ask.value(address, "--address", "Your email address", _check_address)
    your_name = ask.value(name, "--name", "Your name (as you sign)", _check_name)
    account = ask.value(
        account_name,
        "--account-name",
        "Account name (used in commands and logs)",
        _check_account_name,
        default=default_account_name(addr),
    )
    custom_flags = _server_flags_given(*imap_flags, *smtp_flags)
    provider, suggested = _find_provider(ask, addr, provider_key, custom_flags)
    if provider is None:
        imap, smtp = _custom_servers(ask, addr, imap_flags, smtp_flags, suggested)
        login = ask.value(
            username, "--username", "User name on both servers", _check_line, default=addr
        )
    else:
        imap = Endpoint(provider.imap.host, provider.imap.port, provider.imap.security)
        smtp = Endpoint(provider.smtp.host, provider.smtp.port, provider.smtp.security)
        # Presets sign in with the address; only a flag changes that (iCloud may want less).
        login = addr if username is None else ask.value(username, "--username", "", _check_line)
        _explain_auth(provider)
    token = _token_command(ask, provider, token_command)
    source = _password_source(ask, account, *sources)
    return Answers(addr, your_name, account, provider, imap, smtp, login, source, token)


COMMANDS = (init,)
