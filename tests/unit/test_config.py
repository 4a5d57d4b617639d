"""Configuration loading: fixed keys, clear errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghostwatch.config import Security, load_config, parse_config
from ghostwatch.credentials import resolve_password
from ghostwatch.errors import ConfigError, CredentialError

GOOD = """
[database]
url = "sqlite:////tmp/gw-test.db"

[[accounts]]
name = "work"
address = "Alice@Example.com"
aliases = ["alice@old-domain.com"]
[accounts.imap]
host = "imap.example.com"
port = 993
security = "tls"
username = "alice@example.com"
password_command = "echo s3cret"
[accounts.smtp]
host = "smtp.example.com"
port = 465
security = "tls"
username = "alice@example.com"
password_command = "echo s3cret"
"""


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    p.chmod(mode)
    return p


def test_the_documented_example_keys_load(tmp_path: Path) -> None:
    settings, _path = load_config(write(tmp_path, GOOD))
    account = settings.account("work")
    assert account.address == "alice@example.com"
    assert account.own_addresses() == {"alice@example.com", "alice@old-domain.com"}
    assert account.imap.security is Security.TLS
    assert settings.database.url == "sqlite:////tmp/gw-test.db"
    assert resolve_password(account.imap, "work/imap") == "s3cret"


def test_shipped_config_example_is_valid() -> None:
    example = Path(__file__).parents[2] / "config.example.toml"
    settings = parse_config(example.read_bytes(), example)
    assert settings.accounts[0].name == "work"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHOSTWATCH_DATABASE__URL", "sqlite:////tmp/other.db")
    settings, _ = load_config(write(tmp_path, GOOD))
    assert settings.database.url == "sqlite:////tmp/other.db"


def test_config_found_via_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GHOSTWATCH_CONFIG", str(write(tmp_path, GOOD)))
    _, path = load_config(None)
    assert path == tmp_path / "config.toml"


def test_missing_file_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no configuration file found"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('security = "tls"\nusername', 'security = "tls-ish"\nusername'),
            r"accounts\[0\]\.imap\.security",
        ),
        (
            ('password_command = "echo s3cret"\n[accounts.smtp]', "[accounts.smtp]"),
            r"accounts\[0\]\.imap: .*exactly one",
        ),
        (
            ('address = "Alice@Example.com"', 'address = "not-an-address"'),
            r"accounts\[0\]\.address",
        ),
        (("port = 993", "port = 99999"), r"accounts\[0\]\.imap\.port"),
        (('name = "work"', 'name = "work"\ncolour = "blue"'), r"accounts\[0\]\.colour"),
    ],
    ids=["bad-enum", "no-password-source", "bad-address", "port-out-of-range", "unknown-key"],
)
def test_validation_errors_name_file_and_key(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    text = GOOD.replace(change[0], change[1], 1)
    assert text != GOOD
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "\n[[accounts]\n")
    with pytest.raises(ConfigError, match=r"not valid TOML.*line"):
        load_config(path)


def test_cleartext_imap_refused_for_remote_host(tmp_path: Path) -> None:
    text = GOOD.replace('security = "tls"', 'security = "none"', 1)
    with pytest.raises(ConfigError, match="only allowed for a loopback host"):
        load_config(write(tmp_path, text))


def test_cleartext_imap_allowed_on_loopback(tmp_path: Path) -> None:
    text = GOOD.replace('host = "imap.example.com"', 'host = "127.0.0.1"').replace(
        'security = "tls"', 'security = "none"', 1
    )
    settings, _ = load_config(write(tmp_path, text))
    assert settings.accounts[0].imap.security is Security.NONE


PLAIN = GOOD.replace('password_command = "echo s3cret"', 'password = "hunter2"')


def test_plaintext_password_refused_when_group_readable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"accounts\[0\]\.imap\.password.*chmod 600"):
        load_config(write(tmp_path, PLAIN, mode=0o640))


def test_plaintext_password_accepted_when_private(tmp_path: Path) -> None:
    settings, _ = load_config(write(tmp_path, PLAIN, mode=0o600))
    assert resolve_password(settings.accounts[0].imap, "work/imap") == "hunter2"


def test_password_is_not_in_the_repr(tmp_path: Path) -> None:
    settings, _ = load_config(write(tmp_path, PLAIN))
    assert "hunter2" not in repr(settings)


def test_duplicate_account_names_refused(tmp_path: Path) -> None:
    block = GOOD[GOOD.index("[[accounts]]") :]
    with pytest.raises(ConfigError, match="used twice"):
        load_config(write(tmp_path, GOOD + block))


def test_failing_password_command_says_why_without_stdout(tmp_path: Path) -> None:
    text = GOOD.replace("echo s3cret", "echo leaked; echo locked >&2; exit 3", 1)
    settings, _ = load_config(write(tmp_path, text))
    with pytest.raises(CredentialError, match="exited with 3: locked") as err:
        resolve_password(settings.accounts[0].imap, "work/imap")
    assert "leaked" not in str(err.value)


def test_password_credential_reads_systemd_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = GOOD.replace('password_command = "echo s3cret"', 'password_credential = "work-imap"', 1)
    settings, _ = load_config(write(tmp_path, text))
    (tmp_path / "work-imap").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert resolve_password(settings.accounts[0].imap, "work/imap") == "from-systemd"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(CredentialError, match="CREDENTIALS_DIRECTORY"):
        resolve_password(settings.accounts[0].imap, "work/imap")


def test_sending_defaults_are_the_safe_ones(tmp_path: Path) -> None:
    """Without a [sending] table nothing goes out unapproved and nothing is a dry run."""
    settings, _ = load_config(write(tmp_path, GOOD))
    sending = settings.sending
    assert sending.auto_send is False
    assert sending.dry_run is False
    assert (sending.hourly_cap, sending.per_client_daily) == (20, 1)
    assert sending.save_to_sent.value == "auto"


def test_a_bad_sending_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sending\.save_to_sent"):
        load_config(write(tmp_path, GOOD + '\n[sending]\nsave_to_sent = "sometimes"\n'))


def test_smtp_token_command_replaces_the_password(tmp_path: Path) -> None:
    """XOAUTH2: token_command alone is enough; with a password source as well it is
    refused, since only one of them would be used."""
    oauth = GOOD.replace(
        'port = 465\nsecurity = "tls"\nusername = "alice@example.com"\npassword_command = "echo s3cret"',
        'port = 465\nsecurity = "tls"\nusername = "alice@example.com"\ntoken_command = "echo tok"',
    )
    assert "token_command" in oauth
    settings, _ = load_config(write(tmp_path, oauth))
    smtp = settings.account("work").smtp
    assert smtp is not None and smtp.token_command == "echo tok" and smtp.password_command is None
    both = GOOD.replace("port = 465\n", 'port = 465\ntoken_command = "echo tok"\n')
    with pytest.raises(ConfigError, match=r"token_command .* replaces the password"):
        load_config(write(tmp_path, both))
