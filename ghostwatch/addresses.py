"""Validating the email addresses a user writes in the config."""

from __future__ import annotations


def check_address(value: str) -> str:
    """Lowercase ``value`` and check it looks like ``local@domain.tld``."""
    value = value.strip().lower()
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or any(c in value for c in " \r\n<>,;"):
        raise ValueError(f"{value!r} is not an email address")
    return value
