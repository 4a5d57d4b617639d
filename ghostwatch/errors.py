"""Typed errors. Only the CLI turns these into exit codes; everything else raises."""

from __future__ import annotations


class GhostwatchError(Exception):
    """Base class: the message is written for the user and says what to do."""


class ConfigError(GhostwatchError):
    """The configuration file is missing, unreadable or invalid."""


class ConfigNotFoundError(ConfigError):
    """No configuration file exists where ghostwatch looked."""


class CredentialError(GhostwatchError):
    """A password could not be obtained (command failed, file missing, ...)."""


class AuthenticationError(GhostwatchError):
    """The server rejected the login. Retrying will not help."""


class ServerUnreachableError(GhostwatchError):
    """The server could not be reached (network, DNS, refused, timeout)."""


class TLSError(GhostwatchError):
    """The TLS handshake or certificate verification failed; never downgraded."""


class StoreError(GhostwatchError):
    """The database is unreachable or not migrated."""
