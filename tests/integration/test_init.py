"""`ghostwatch init`, run as a user runs it: a subprocess writing a real file, and
testing the login against the real Dovecot and Postfix on loopback."""

from __future__ import annotations

import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mailenv import make_env, run_cli
from mailstack import MailStack


def run_init(config: Path, *args: str, input: str = "") -> subprocess.CompletedProcess[str]:
    """``ghostwatch --config CONFIG init ARGS`` in a subprocess, stdin a pipe (never a
    terminal) fed with ``input``. The one place that says how init is started."""
    return subprocess.run(
        [sys.executable, "-m", "ghostwatch.cli", "--config", str(config), "init", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        # No controlling terminal: a hidden prompt (getpass) must never read the
        # developer's tty instead of the pipe.
        start_new_session=True,
    )


def loopback_flags(stack: MailStack) -> list[str]:
    """A custom server: the test Dovecot and Postfix, without TLS (loopback only)."""
    return [
        "--imap-host", "127.0.0.1", "--imap-port", str(stack.imap_port), "--imap-security", "none",
        "--smtp-host", "127.0.0.1", "--smtp-port", str(stack.smtp_port), "--smtp-security", "none",
    ]  # fmt: skip


def load(config: Path) -> dict[str, Any]:
    return tomllib.loads(config.read_text(encoding="utf-8"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_custom_server_with_no_check_writes_a_0600_file_that_check_config_accepts(
    tmp_path: Path,
) -> None:
    """Non-interactive, custom servers, --no-check: the file (in a new 0700 directory)
    is mode 0600, holds what was asked for, and `ghostwatch check-config` accepts it."""
    config = tmp_path / "new" / "config.toml"
    done = run_init(
        config,
        "--address", "Alice@Studio.example", "--name", "Alice Rossi", "--yes", "--no-check",
        "--imap-host", "mail.studio.example", "--smtp-host", "mail.studio.example",
        "--smtp-security", "starttls", "--password-command", "pass show mail/studio",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert mode(config) == 0o600
    assert mode(config.parent) == 0o700
    data = load(config)
    assert data["profile"] == {"name": "Alice Rossi"}
    (account,) = data["accounts"]
    assert account["name"] == "studio"  # the domain's first label
    assert account["address"] == "alice@studio.example"
    assert account["display_name"] == "Alice Rossi"
    assert account["imap"] == {
        "host": "mail.studio.example", "port": 993, "security": "tls",
        "username": "alice@studio.example", "password_command": "pass show mail/studio",
    }  # fmt: skip
    assert account["smtp"]["port"] == 587
    assert account["smtp"]["security"] == "starttls"
    assert account["smtp"]["password_command"] == "pass show mail/studio"
    text = config.read_text()
    assert "# url = " in text  # [database] left to the default
    assert "# auto_send = false" in text
    assert "# dry_run = true" in text
    assert f"ghostwatch --config {config} doctor" in done.stdout
    checked = run_cli(config, "check-config")
    assert checked.returncode == 0, checked.stderr
    assert "account studio: alice@studio.example, IMAP mail.studio.example:993 (tls)" in (
        checked.stdout
    )


@pytest.mark.mailstack
def test_check_logs_in_to_dovecot_and_postfix_and_reports_the_sent_folder(
    mailstack: MailStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the login test on: IMAP login OK, the Sent and Drafts folders named, SMTP
    OK; the file is written, and `ghostwatch doctor` passes with it."""
    env = make_env(mailstack, tmp_path)
    config = tmp_path / "config.toml"
    done = run_init(
        config,
        "--address", env.address, "--name", "Alice", "--account-name", "work", "--yes",
        "--provider", "custom", *loopback_flags(mailstack),
        "--password-command", f"echo {env.password}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"IMAP 127.0.0.1:{mailstack.imap_port} (none): login OK" in done.stdout
    assert "Sent folder: 'Sent'" in done.stdout
    assert "Drafts folder: 'Drafts'" in done.stdout
    assert f"SMTP: 127.0.0.1:{mailstack.smtp_port}" in done.stdout
    assert "FAILED" not in done.stdout
    assert mode(config) == 0o600
    monkeypatch.setenv("GHOSTWATCH_DATABASE__URL", f"sqlite:///{tmp_path / 'gw.db'}")
    doctor = run_cli(config, "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "PASS  work: IMAP" in doctor.stdout
    assert "PASS  work: SMTP" in doctor.stdout


@pytest.mark.mailstack
def test_a_wrong_password_fails_the_check_and_writes_nothing(
    mailstack: MailStack, tmp_path: Path
) -> None:
    """Dovecot refuses the login: the error is printed, exit 1, no file, no traceback."""
    env = make_env(mailstack, tmp_path)
    config = tmp_path / "config.toml"
    done = run_init(
        config,
        "--address", env.address, "--name", "Alice", "--yes", *loopback_flags(mailstack),
        "--password-command", "echo not-the-password",
    )  # fmt: skip
    assert done.returncode == 1
    assert "IMAP: FAILED" in done.stdout
    assert "was refused" in done.stdout
    assert "nothing was written" in done.stderr
    assert "Traceback" not in done.stderr
    assert not config.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ghostwatch-init")]


@pytest.mark.mailstack
def test_a_systemd_credential_file_next_to_the_config_is_used_for_the_check(
    mailstack: MailStack, tmp_path: Path
) -> None:
    """--password-credential outside systemd: the login is tested with the credential
    file where the user unit loads it from (credentials/ next to the config), and the
    next steps show the matching LoadCredential= line."""
    env = make_env(mailstack, tmp_path)
    config = tmp_path / "config.toml"
    (tmp_path / "credentials").mkdir(mode=0o700)
    (tmp_path / "credentials" / "work-password").write_text(env.password + "\n")
    done = run_init(
        config,
        "--address", env.address, "--name", "Alice", "--account-name", "work", "--yes",
        *loopback_flags(mailstack), "--password-credential", "work-password",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "login OK" in done.stdout
    account = load(config)["accounts"][0]
    assert account["imap"]["password_credential"] == "work-password"
    assert account["smtp"]["password_credential"] == "work-password"
    assert "LoadCredential=work-password:/etc/ghostwatch/credentials/work-password" in done.stdout


def test_an_existing_file_is_kept_unless_force(tmp_path: Path) -> None:
    """Without --force an existing config is left byte for byte (exit 1, nothing
    asked); with --force it is replaced, mode 0600."""
    config = tmp_path / "config.toml"
    config.write_text("# mine\n")
    config.chmod(0o644)
    args = ["--address", "alice@gmail.com", "--name", "Alice", "--yes", "--no-check",
            "--password-command", "pass show mail/gmail"]  # fmt: skip
    kept = run_init(config, *args)
    assert kept.returncode == 1
    assert "already exists" in kept.stderr
    assert "--force" in kept.stderr
    assert config.read_text() == "# mine\n"
    replaced = run_init(config, *args, "--force")
    assert replaced.returncode == 0, replaced.stderr
    assert load(config)["accounts"][0]["imap"]["host"] == "imap.gmail.com"
    assert mode(config) == 0o600


def test_a_gmail_address_gets_the_gmail_preset_without_prompts(tmp_path: Path) -> None:
    """--yes with a Gmail address: imap.gmail.com / smtp.gmail.com with implicit TLS, the
    account named after the domain, the app-password note printed."""
    config = tmp_path / "config.toml"
    done = run_init(
        config, "--address", "alice@gmail.com", "--name", "Alice Rossi", "--yes",
        "--no-check", "--password-command", "pass show mail/gmail",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Gmail / Google Workspace" in done.stdout
    assert "app password" in done.stdout
    (account,) = load(config)["accounts"]
    assert account["name"] == "gmail"
    assert (account["imap"]["host"], account["imap"]["port"]) == ("imap.gmail.com", 993)
    assert (account["smtp"]["host"], account["smtp"]["port"]) == ("smtp.gmail.com", 465)
    assert account["smtp"]["security"] == "tls"
    assert account["smtp"]["password_command"] == "pass show mail/gmail"
    assert run_cli(config, "check-config").returncode == 0


def test_an_oauth2_only_provider_needs_and_writes_a_token_command(tmp_path: Path) -> None:
    """Outlook.com: without --token-command --yes fails naming the flag; with it, SMTP
    signs in with token_command and IMAP keeps its password source."""
    config = tmp_path / "config.toml"
    base = ["--address", "alice@outlook.com", "--name", "Alice", "--yes", "--no-check",
            "--password-env", "OUTLOOK_PW"]  # fmt: skip
    missing = run_init(config, *base)
    assert missing.returncode == 2
    assert "--token-command" in missing.stderr
    assert not config.exists()
    done = run_init(config, *base, "--token-command", "oauth2-token outlook")
    assert done.returncode == 0, done.stderr
    account = load(config)["accounts"][0]
    assert account["smtp"]["token_command"] == "oauth2-token outlook"
    assert "password_env" not in account["smtp"]
    assert account["imap"]["password_env"] == "OUTLOOK_PW"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--name", "A", "--password-env", "PW", "--no-check"], "--address"),
        (["--address", "a@gmail.com", "--password-env", "PW", "--no-check"], "--name"),
        (["--address", "a@gmail.com", "--name", "A", "--no-check"], "--password-command"),
        (["--address", "a@example.com", "--name", "A", "--password-env", "PW"], "--imap-host"),
        (["--address", "a@example.com", "--name", "A", "--password-env", "PW",
          "--imap-host", "imap.example.com"], "--smtp-host"),
        (["--address", "a@example.com", "--name", "A", "--password-env", "PW",
          "--imap-host", "imap.example.com", "--smtp-host", "smtp.example.com",
          "--smtp-security", "none"], "--smtp-security"),
        (["--address", "not-an-address", "--name", "A", "--password-env", "PW"], "--address"),
        (["--address", "a@gmail.com", "--name", "A", "--password-env", "PW",
          "--password-command", "x"], "--password-command"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("yes", [True, False], ids=["yes", "stdin-not-a-tty"])
def test_a_missing_or_bad_value_is_an_error_naming_its_flag(
    tmp_path: Path, args: list[str], flag: str, yes: bool
) -> None:
    """With --yes, or with stdin not a terminal (no --interactive), nothing is asked:
    a missing or invalid value is a usage error (exit 2) naming the flag; no file."""
    config = tmp_path / "config.toml"
    done = run_init(config, *args, *(["--yes"] if yes else []))
    assert done.returncode == 2, done.stdout + done.stderr
    assert flag in done.stderr
    assert "Traceback" not in done.stderr
    assert not config.exists()


def test_a_config_that_would_not_load_is_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is parsed as ghostwatch will read it before it is written: here an
    environment override makes it invalid, so init exits 2 and writes nothing."""
    monkeypatch.setenv("GHOSTWATCH_SENDING__HOURLY_CAP", "0")
    config = tmp_path / "config.toml"
    done = run_init(
        config, "--address", "alice@gmail.com", "--name", "Alice", "--yes", "--no-check",
        "--password-command", "pass show mail/gmail",
    )  # fmt: skip
    assert done.returncode == 2
    assert "would be invalid" in done.stderr
    assert "hourly_cap" in done.stderr
    assert str(config) in done.stderr
    assert not config.exists()


@pytest.mark.mailstack
def test_interactive_prompts_driven_through_stdin_set_up_a_custom_server(
    mailstack: MailStack, tmp_path: Path
) -> None:
    """--interactive asks for everything through the pipe, offering defaults (account
    name from the domain, password_command): a custom server, then the login test."""
    env = make_env(mailstack, tmp_path)
    config = tmp_path / "config.toml"
    answers = [
        env.address,  # Your email address
        "Alice Rossi",  # Your name
        "",  # Account name: the default, from the domain (example)
        # No preset for example.test: the servers. "plain" is no security: asked again.
        "127.0.0.1", "plain", "none", str(mailstack.imap_port),
        "127.0.0.1", "none", str(mailstack.smtp_port),
        "",  # User name: the address
        "",  # Password source: command
        f"echo {env.password}",  # password_command
    ]  # fmt: skip
    done = run_init(config, "--interactive", input="\n".join(answers) + "\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Error: 'plain' is not one of 'tls', 'starttls', 'none'." in done.stdout
    assert "login OK" in done.stdout
    assert "Sent folder: 'Sent'" in done.stdout
    (account,) = load(config)["accounts"]
    assert account["name"] == "example"
    assert account["imap"]["port"] == mailstack.imap_port
    assert account["imap"]["password_command"] == f"echo {env.password}"
    assert account["smtp"]["port"] == mailstack.smtp_port
    assert mode(config) == 0o600


@pytest.mark.mailstack
@pytest.mark.parametrize("write_anyway", [False, True])
def test_interactive_failed_check_asks_before_writing(
    mailstack: MailStack, tmp_path: Path, write_anyway: bool
) -> None:
    """Interactive, wrong password: the failure is shown and the question "write the
    config anyway?" defaults to no; answering yes writes it."""
    env = make_env(mailstack, tmp_path)
    config = tmp_path / "config.toml"
    done = run_init(
        config,
        "--interactive", "--address", env.address, "--name", "Alice", "--account-name", "w",
        *loopback_flags(mailstack), "--username", env.address,
        "--password-command", "echo wrong",
        input="y\n" if write_anyway else "\n",
    )  # fmt: skip
    assert "IMAP: FAILED" in done.stdout
    assert "Write the config anyway?" in done.stdout
    assert config.exists() is write_anyway
    assert done.returncode == (0 if write_anyway else 1), done.stdout + done.stderr


def test_interactive_with_yes_is_refused(tmp_path: Path) -> None:
    """--yes (never ask) and --interactive (always ask) cannot both hold."""
    done = run_init(tmp_path / "c.toml", "--yes", "--interactive")
    assert done.returncode == 2
    assert "contradict" in done.stderr
