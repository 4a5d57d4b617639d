"""`ghostwatch init` in-process: defaults, MX lookups, every preset's file, hidden
prompts, the default path. The real logins are in tests/integration/test_init.py."""

from __future__ import annotations

import stat
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner, Result

from ghostwatch import init_cli
from ghostwatch.cliutil import Context
from ghostwatch.config import parse_config
from ghostwatch.init_cli import (
    Answers,
    Endpoint,
    PasswordSource,
    compose_config,
    default_account_name,
    init,
    mx_hosts,
    validate,
)
from ghostwatch.providers import all_providers


def invoke(config: Path | None, *args: str, input: str | None = None, **env: str) -> Result:
    return CliRunner().invoke(
        init, list(args), obj=Context(config, None), input=input, env=env or None
    )


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("alice@gmail.com", "gmail"),
        ("alice@studio.example.com", "studio"),
        ("alice@my-studio.it", "my-studio"),
        ("alice@müller.de", "m_ller"),
        ("alice@ü.de", "mail"),
        ("alice@" + "x" * 80 + ".com", "x" * 64),
    ],
)
def test_default_account_name_is_the_first_domain_label_made_valid(
    address: str, expected: str
) -> None:
    """The part of the domain before the first dot, with anything outside
    [A-Za-z0-9_.-] replaced, at most 64 characters, never empty."""
    assert default_account_name(address) == expected


def test_mx_hosts_is_empty_without_dnspython(monkeypatch: pytest.MonkeyPatch) -> None:
    """dnspython is optional: without it there is no MX lookup, and no error."""
    # None in sys.modules makes the import fail as if dnspython were not installed.
    monkeypatch.setitem(sys.modules, "dns.resolver", None)
    assert mx_hosts("example.com") == []


def test_mx_hosts_uses_dnspython_most_preferred_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """With dnspython, MX records are sorted by preference and lose the final dot; a
    DNS error means no hosts."""

    def resolve(domain: str, rdtype: str, lifetime: float) -> list[SimpleNamespace]:
        if domain == "broken.example":
            raise OSError("timeout")
        return [
            SimpleNamespace(preference=20, exchange="alt1.aspmx.l.google.com."),
            SimpleNamespace(preference=10, exchange="aspmx.l.google.com."),
        ]

    monkeypatch.setitem(sys.modules, "dns.resolver", SimpleNamespace(resolve=resolve))
    assert mx_hosts("studio.example") == ["aspmx.l.google.com", "alt1.aspmx.l.google.com"]
    assert mx_hosts("broken.example") == []


def test_a_custom_domain_hosted_by_google_gets_the_gmail_preset_from_its_mx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No preset for the address's domain: its MX hosts decide (Google Workspace)."""
    monkeypatch.setattr(init_cli, "mx_hosts", lambda domain: ["aspmx.l.google.com"])
    config = tmp_path / "config.toml"
    result = invoke(
        config, "--address", "alice@studio.example", "--name", "Alice", "--yes",
        "--no-check", "--password-command", "pass show mail/studio",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "from studio.example's mail servers, MX aspmx.l.google.com" in result.output
    account = tomllib.loads(config.read_text())["accounts"][0]
    assert account["imap"]["host"] == "imap.gmail.com"
    assert account["name"] == "studio"


def _answers(provider_key: str | None, source: PasswordSource, token: str | None) -> Answers:
    provider = {p.key: p for p in all_providers()}.get(provider_key or "")
    return Answers(
        address="alice@example.it",
        name='Zoë "Z" O\'Brien \\ Studio',
        account_name="work",
        provider=provider,
        imap=Endpoint("127.0.0.1", 1143, "none"),
        smtp=Endpoint("smtp.example.it", 587, "starttls"),
        username="alice@example.it",
        source=source,
        token_command=token,
    )


SOURCES = [
    PasswordSource("command", "pass show mail/work"),
    PasswordSource("credential", "work-password"),
    PasswordSource("env", "WORK_PW"),
    PasswordSource("plaintext", 'p"ss\\wörd'),
]


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.kind)
@pytest.mark.parametrize("key", [None, *(p.key for p in all_providers())])
def test_every_preset_and_password_source_composes_a_file_ghostwatch_loads(
    tmp_path: Path, key: str | None, source: PasswordSource
) -> None:
    """Each preset (and a custom server) with each password source, with a token
    command where the provider takes OAuth2, gives a file parse_config accepts,
    holding exactly that source, the name and display name."""
    provider = {p.key: p for p in all_providers()}.get(key or "")
    oauth = provider is not None and provider.auth in ("oauth2", "app_password_or_oauth2")
    answers = _answers(key, source, "oauth2-token work" if oauth else None)
    text = compose_config(answers)
    path = tmp_path / "config.toml"
    settings = validate(text, path)
    (account,) = settings.accounts
    assert getattr(account.imap, source.key) == source.value
    if oauth:
        assert account.smtp is not None
        assert account.smtp.token_command == "oauth2-token work"
    else:
        assert getattr(account.smtp, source.key) == source.value
    assert settings.profile.name == answers.name
    assert account.display_name == answers.name
    assert "@@" not in text  # no placeholder left behind


def test_interactive_plaintext_password_is_stored_only_in_a_0600_file(tmp_path: Path) -> None:
    """The discouraged choice works: the hidden, confirmed password goes into the file,
    which is 0600 and so loads (a plaintext password in a wider file is refused)."""
    config = tmp_path / "config.toml"
    answers = ["alice@libero.it", "Alice", "", "", "plaintext", "s3cret", "s3cret"]
    result = invoke(config, "--interactive", "--no-check", input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    assert "clear text" in result.output
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    settings = parse_config(config.read_bytes(), config)
    assert settings.accounts[0].imap.password == "s3cret"
    assert settings.accounts[0].imap.host == "imapmail.libero.it"


def test_interactive_gmail_can_send_with_oauth2(tmp_path: Path) -> None:
    """Gmail takes an app password or OAuth2: answering yes asks for the token command,
    which replaces the SMTP password; IMAP keeps the password source."""
    config = tmp_path / "config.toml"
    answers = ["alice@gmail.com", "Alice", "", "", "y", "oauth2-token gmail", "", ""]
    result = invoke(config, "--interactive", "--no-check", input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    account = tomllib.loads(config.read_text())["accounts"][0]
    assert account["smtp"]["token_command"] == "oauth2-token gmail"
    assert account["imap"]["password_command"] == "pass show mail/gmail"


def test_declining_the_preset_asks_for_servers_with_its_hosts_as_defaults(
    tmp_path: Path,
) -> None:
    """ "Use these servers? n" turns the preset into a custom server whose prompts
    offer the preset's hosts (e.g. to switch Zoho to its EU data centre)."""
    config = tmp_path / "config.toml"
    answers = ["alice@zoho.com", "Alice", "", "n", "imap.zoho.eu", "", "", "smtp.zoho.eu",
               "", "", "", "", ""]  # fmt: skip
    result = invoke(config, "--interactive", "--no-check", input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    assert "IMAP server [imap.zoho.com]" in result.output
    account = tomllib.loads(config.read_text())["accounts"][0]
    assert (account["imap"]["host"], account["imap"]["port"]) == ("imap.zoho.eu", 993)
    assert (account["smtp"]["host"], account["smtp"]["port"]) == ("smtp.zoho.eu", 465)


def test_without_config_the_file_goes_to_the_users_config_dir(tmp_path: Path) -> None:
    """No --config: ~/.config/ghostwatch/config.toml in a new 0700 directory; the next
    steps need no --config; a $GHOSTWATCH_CONFIG pointing elsewhere is pointed out."""
    other = str(tmp_path / "elsewhere.toml")
    result = invoke(
        None, "--address", "alice@gmail.com", "--name", "Alice", "--yes", "--no-check",
        "--password-env", "PW", HOME=str(tmp_path), GHOSTWATCH_CONFIG=other,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    written = tmp_path / ".config" / "ghostwatch" / "config.toml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700
    assert "  ghostwatch doctor\n" in result.stdout
    assert f"$GHOSTWATCH_CONFIG is {other}" in result.stderr


def test_a_credential_that_cannot_be_found_fails_the_check_and_says_no_check(
    tmp_path: Path,
) -> None:
    """--password-credential outside systemd, without the credential file: the login
    cannot be tested; the error says where the file belongs and about --no-check."""
    config = tmp_path / "config.toml"
    result = invoke(
        config, "--address", "alice@gmail.com", "--name", "Alice", "--yes",
        "--password-credential", "nowhere-to-be-found",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "/etc/ghostwatch/credentials/nowhere-to-be-found" in result.stdout
    assert "--no-check" in result.stderr
    assert not config.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account-name", "no spaces"], "--account-name: 'no spaces'"),
        (["--password-env", "1BAD"], "--password-env: '1BAD' is not an environment variable"),
        (["--password-credential", "a/b"], "--password-credential: 'a/b'"),
        (["--token-command", "x"], "--token-command: Libero Mail does not sign in with OAuth2"),
        (["--name", "two\nlines"], "--name: your name must be one line"),
        (["--provider", "gmail", "--imap-host", "x"], "use them with --provider custom"),
    ],
)
def test_bad_values_are_usage_errors_that_say_what_is_wrong(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Invalid flag values are refused before anything is written, naming the flag."""
    config = tmp_path / "config.toml"
    base = {"--address": "alice@libero.it", "--name": "Alice", "--password-env": "PW"}
    if "--password-credential" in args:
        del base["--password-env"]  # one password source at a time
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    flat = [item for pair in base.items() for item in pair]
    result = invoke(config, *flat, "--yes", "--no-check")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not config.exists()
