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


def resolve_password(server: ServerSettings, where: str) -> str:
    """Return the password for ``server``; ``where`` names it in errors (``work/imap``)."""
    if server.password is not None:
        return server.password
    if server.password_command is not None:
        try:
            done = subprocess.run(
                ["/bin/sh", "-c", server.password_command],
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CredentialError(
                f"{where}: password_command did not finish within {COMMAND_TIMEOUT:.0f}s"
            ) from exc
        if done.returncode != 0:
            # stderr of a password manager says why (locked, missing entry); stdout may
            # hold a secret, so it is never shown.
            detail = done.stderr.strip().splitlines()[-1:] or ["no message"]
            raise CredentialError(
                f"{where}: password_command exited with {done.returncode}: {detail[0]}"
            )
        password = _first_line(done.stdout)
        if not password:
            raise CredentialError(f"{where}: password_command printed nothing")
        return password
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
