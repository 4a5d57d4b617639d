"""Obtaining passwords without ever logging them.

One of ``password_command`` (run through ``/bin/sh -c``, first line of stdout),
``password_file``, ``password_env``, ``password_credential`` (a file in systemd's
``$CREDENTIALS_DIRECTORY``, see ``LoadCredential=``) or a plaintext ``password``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ghostwatch.config import ServerSettings
from ghostwatch.errors import CredentialError

COMMAND_TIMEOUT = 60.0


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def run_secret_command(command: str, where: str, key: str) -> str:
    """Run ``command`` with ``/bin/sh -c``; return the first line it prints.

    Used for passwords and OAuth 2.0 access tokens. On failure the error shows the
    command's last stderr line (a password manager says why there), never its stdout,
    which may hold the secret.
    """
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CredentialError(
            f"{where}: {key} did not finish within {COMMAND_TIMEOUT:.0f}s"
        ) from exc
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or ["no message"]
        raise CredentialError(f"{where}: {key} exited with {done.returncode}: {detail[0]}")
    secret = _first_line(done.stdout)
    if not secret:
        raise CredentialError(f"{where}: {key} printed nothing")
    return secret


def resolve_password(server: ServerSettings, where: str) -> str:
    """Return the password for ``server``; ``where`` names it in errors (``work/imap``)."""
    if server.password is not None:
        return server.password
    if server.password_command is not None:
        return run_secret_command(server.password_command, where, "password_command")
    if server.password_file is not None:
        return _read_secret_file(server.password_file.expanduser(), where, "password_file")
    if server.password_env is not None:
        value = os.environ.get(server.password_env)
        if not value:
            raise CredentialError(
                f"{where}: environment variable {server.password_env} is not set or empty"
            )
        return value
    if server.password_credential is not None:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise CredentialError(
                f"{where}: password_credential = {server.password_credential!r} needs "
                "$CREDENTIALS_DIRECTORY (set by systemd's LoadCredential=)"
            )
        return _read_secret_file(
            Path(directory) / server.password_credential, where, "password_credential"
        )
    raise CredentialError(f"{where}: no password source configured")


def _read_secret_file(path: Path, where: str, key: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CredentialError(f"{where}: {key} {path}: {exc.strerror}") from exc
    password = _first_line(text)
    if not password:
        raise CredentialError(f"{where}: {key} {path} is empty")
    return password
