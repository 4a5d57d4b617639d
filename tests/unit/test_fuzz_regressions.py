"""Inputs that crashed a parser under property-based testing or fuzzing (bench/fuzz.py).

Each test names the entry point, the input and the documented contract it broke: the
parser raised something other than its typed error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from ghostwatch.config import Settings, parse_config
from ghostwatch.errors import ConfigError
from ghostwatch.replycommands import Parsed, ReplyCommandError, parse


@pytest.fixture(autouse=True)
def _no_env_overrides() -> Iterator[None]:
    """GHOSTWATCH_* variables override the file; keep the developer's out of these tests."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("GHOSTWATCH_")]:
            mp.delenv(name)
        yield


def _load(tmp_path: Path, raw: bytes) -> Settings:
    path = tmp_path / "config.toml"
    path.write_bytes(raw)
    path.chmod(0o600)
    return parse_config(raw, path)


# --- config: `accounts` that is not a list ---------------------------------------------
# _uses_plaintext_password iterated data["accounts"] before pydantic saw it, so a scalar
# raised TypeError ("'int' object is not iterable") instead of ConfigError.


@pytest.mark.parametrize(
    "raw",
    [
        b"accounts = 5",
        b"accounts = true",
        b"accounts = 1.5",
        b"accounts = 2000-01-01",
        b"_cli_parse_args = nan\naccounts = nan\ndatabase = 1.5\n",  # found by bench/fuzz.py
    ],
)
def test_config_scalar_accounts_is_a_config_error(tmp_path: Path, raw: bytes) -> None:
    with pytest.raises(ConfigError, match="accounts"):
        _load(tmp_path, raw)


# --- config: top-level keys that collide with BaseSettings.__init__ options ----------------
# Settings(**data) handed "_env_file", "_env_prefix", "_cli_parse_args", ... to
# pydantic-settings as constructor options: some raised TypeError, others were silently
# obeyed (a config file could switch on command-line parsing or change the env prefix).


@pytest.mark.parametrize(
    "raw",
    [
        b"_env_prefix = 5",
        b"_env_file = 5",
        b"_build_sources = 5",
        b"_env_nested_max_split = 'a'",
        b"__pydantic_self__ = 1",
        b"_cli_parse_args = true",  # SystemExit(2): pydantic parsed pytest's own argv
        b'_cli_parse_args = ["", "", ""]\ndaemon = "auto"\n',  # SystemExit, bench/fuzz.py
        b'_cli_parse_args = "due_date"\n',  # pydantic_settings.SettingsError, bench/fuzz.py
        b"_env_file = 07:32:00\n",  # TypeError, bench/fuzz.py
        b"_env_prefix = 'X'",
        b"_case_sensitive = 'x'",
        b"_secrets_dir = '/'",
    ],
)
def test_config_underscore_keys_are_refused(tmp_path: Path, raw: bytes) -> None:
    with pytest.raises(ConfigError, match="not permitted"):
        _load(tmp_path, raw)


# --- config: TOML nested deeper than the parser's recursion ---------------------------------
# tomllib recurses per nesting level and raised RecursionError, not TOMLDecodeError.


@pytest.mark.parametrize(
    "raw",
    [b"a = " + b"[" * 2000 + b"]" * 2000, b"a = " + b"{b=" * 2000 + b"1" + b"}" * 2000],
)
def test_config_deep_nesting_is_a_config_error(tmp_path: Path, raw: bytes) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        _load(tmp_path, raw)


# --- replycommands: a time-zone name that is a tzdata directory -----------------------------
# ZoneInfo("America") raises IsADirectoryError and an overlong name OSError(ENAMETOOLONG);
# parse documents ReplyCommandError for an unknown time zone.


@pytest.mark.parametrize("tz", ["America", "Etc", "__pycache__", "a" * 300])
def test_replycommands_directory_time_zone_is_a_reply_command_error(tz: str) -> None:
    with pytest.raises(ReplyCommandError, match="unknown time zone"):
        parse("send 1", today=date(2024, 1, 1), tz=tz)


def test_replycommands_valid_zone_still_parses() -> None:
    parsed = parse("send 1", today=date(2024, 1, 1), tz="Europe/Rome")
    assert isinstance(parsed, Parsed)
    assert [c.items for c in parsed.commands] == [(1,)]
