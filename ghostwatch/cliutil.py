"""What every ``ghostwatch`` command shares: the lazily loaded context, instants
given on the command line, and the one way a command fails."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ghostwatch.clock import Clock, FixedClock, SystemClock
from ghostwatch.config import AccountSettings, Settings, load_config
from ghostwatch.errors import GhostwatchError
from ghostwatch.log import configure_logging

EXIT_ERROR = 1
EXIT_CONFIG = 2


class Context:
    """Lazily loaded configuration and store for a CLI invocation."""

    def __init__(self, config_path: Path | None, now: datetime | None) -> None:
        self.config_path = config_path
        self.clock: Clock = FixedClock(now) if now else SystemClock()
        self._settings: Settings | None = None
        self.settings_path: Path | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings, self.settings_path = load_config(self.config_path)
            configure_logging(self._settings.log.level, self._settings.log.format)
        return self._settings

    def accounts(self, name: str | None) -> list[AccountSettings]:
        """The named account, or every configured one."""
        return [self.settings.account(name)] if name else list(self.settings.accounts)

    def sessions(self) -> Any:
        from ghostwatch.store import open_store

        return open_store(self.settings.database.url)


def _parse_instant(value: str | None, *, end_of_day: bool = False) -> datetime | None:
    """ISO 8601 date or date/time, UTC when no offset is given; a bare date means its
    start, or with ``end_of_day`` its last second."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or date/time") from exc
    if end_of_day and len(value) == 10:
        when = when.replace(hour=23, minute=59, second=59)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _parse_now(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    return _parse_instant(value)


def _fail(exc: GhostwatchError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_ERROR)
