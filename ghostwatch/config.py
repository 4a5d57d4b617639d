"""Configuration: a TOML file validated by pydantic-settings.

The file is found via ``--config PATH``, else ``$GHOSTWATCH_CONFIG``, else
``~/.config/ghostwatch/config.toml``, else ``/etc/ghostwatch/config.toml``.
Environment variables prefixed ``GHOSTWATCH_`` override file values; nested keys
use ``__`` (``GHOSTWATCH_DATABASE__URL=...``).
"""

from __future__ import annotations

import ipaddress
import os
import stat
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ghostwatch.addresses import check_address
from ghostwatch.errors import ConfigError, ConfigNotFoundError
from ghostwatch.policy import PolicySettings

POLICY_KEYS = ("defaults", "clients", "rules", "policies", "payment_notices")

DEFAULT_SEARCH_PATHS = (
    Path("~/.config/ghostwatch/config.toml"),
    Path("/etc/ghostwatch/config.toml"),
)


class Security(StrEnum):
    TLS = "tls"
    STARTTLS = "starttls"
    NONE = "none"


def is_loopback(host: str) -> bool:
    """True for localhost names and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in {"localhost", "localhost.localdomain", "ip6-localhost"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Strict):
    """Common to IMAP and SMTP: where to connect and how to obtain the password."""

    host: str = Field(description="Server name, e.g. imap.gmail.com.")
    port: int | None = Field(
        default=None, ge=1, le=65535,
        description="Default: 993 (IMAP) or 465 (SMTP) with tls, 143 or 587 with starttls.",
    )  # fmt: skip
    security: Security = Field(
        default=Security.TLS,
        description='"tls" (implicit), "starttls", or "none" (loopback servers only).',
    )
    username: str = Field(description="Login name, usually your address.")
    password: str | None = Field(
        default=None, repr=False,
        description="The password in clear; only accepted when the file is chmod 600.",
    )  # fmt: skip
    password_command: str | None = Field(
        default=None, description="Command printing the password, e.g. `pass show mail/work`."
    )
    password_file: Path | None = Field(
        default=None, description="File holding the password (its first line)."
    )
    password_env: str | None = Field(
        default=None, description="Environment variable holding the password."
    )
    password_credential: str | None = Field(
        default=None,
        description="systemd credential name (LoadCredential=), read from $CREDENTIALS_DIRECTORY.",
    )
    timeout: float = Field(default=60.0, gt=0, description="Socket timeout in seconds.")
    ca_file: Path | None = Field(
        default=None, description="Extra CA bundle to trust (self-hosted servers)."
    )

    @model_validator(mode="after")
    def _one_password_source(self) -> Self:
        sources = [
            name
            for name in (
                "password",
                "password_command",
                "password_file",
                "password_env",
                "password_credential",
            )
            if getattr(self, name) is not None
        ]
        oauth = getattr(self, "token_command", None) is not None
        if oauth and sources:
            raise ValueError(
                f"token_command (XOAUTH2) replaces the password: remove {', '.join(sources)}"
            )
        if len(sources) != 1 and not oauth:
            raise ValueError(
                "set exactly one of password_command, password_file, password_env, "
                f"password_credential or password (found: {', '.join(sources) or 'none'})"
            )
        if self.security is Security.NONE and not is_loopback(self.host):
            raise ValueError(
                f'security = "none" sends the password in clear text; it is only allowed '
                f'for a loopback host, not {self.host!r}. Use "tls" or "starttls".'
            )
        return self


class ImapSettings(ServerSettings):
    folders: list[str] = Field(
        default_factory=list,
        description="Extra folders to sync besides INBOX and the Sent folder.",
    )
    fetch_chunk: int = Field(default=1000, ge=50, le=20000, description="UIDs per FETCH.")

    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 993 if self.security is Security.TLS else 143


class SmtpSettings(ServerSettings):
    token_command: str | None = Field(
        default=None,
        description="Command printing an OAuth 2.0 access token (SASL XOAUTH2), e.g. for "
        "Gmail or Microsoft 365; replaces the password.",
    )

    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 465 if self.security is Security.TLS else 587


class AccountSettings(_Strict):
    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="A short name for the account: work."
    )
    address: str = Field(description="Your address on this account.")
    aliases: list[str] = Field(
        default_factory=list, description="Other addresses of yours that write from it."
    )
    display_name: str | None = Field(
        default=None, description="Your name in the From of the follow-ups."
    )
    colleague_domains: list[str] = Field(
        default_factory=list,
        description="Domains of your own organisation: people there are never chased.",
    )
    imap: ImapSettings
    smtp: SmtpSettings | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_address(value)

    @field_validator("display_name")
    @classmethod
    def _display_name(cls, value: str | None) -> str | None:
        # It goes into the From header of every follow-up: a line break there would
        # add header lines (RFC 5322 section 2.2); refuse it here, at load.
        if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must not contain a line break or another control character")
        return value

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, value: list[str]) -> list[str]:
        return [check_address(v) for v in value]

    @field_validator("colleague_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        return [v.strip().lower().lstrip("@") for v in value]

    def own_addresses(self) -> frozenset[str]:
        return frozenset([self.address, *self.aliases])


def default_database_url() -> str:
    """``$STATE_DIRECTORY`` under systemd, else the XDG state directory."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        # systemd may pass several colon-separated directories; the first is ours.
        base = Path(state.split(":")[0])
    else:
        import platformdirs

        base = Path(platformdirs.user_state_dir("ghostwatch"))
    return f"sqlite:///{base / 'ghostwatch.db'}"


class DatabaseSettings(_Strict):
    url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy URL: sqlite:///path or postgresql://user@host/db.",
    )


class ProfileSettings(_Strict):
    """Who you are in the follow-ups ghostwatch writes for you."""

    name: str = Field(default="", description="Your name, as you sign.")
    phone: str = Field(default="", description="Your phone number, shown to clients.")
    signature: str = Field(default="", description="Closing lines under each message.")
    payment_details: str = Field(
        default="", description="How to pay you (IBAN, PayPal, ...), for payment notices."
    )
    templates_dir: Path | None = Field(
        default=None, description="Your own templates, overriding the shipped ones by name."
    )


class SaveToSent(StrEnum):
    AUTO = "auto"  # APPEND unless the server files sent mail itself (Gmail)
    ALWAYS = "always"
    NEVER = "never"


class SendingSettings(_Strict):
    """How and when ghostwatch may send on its own (``[sending]``)."""

    dry_run: bool = Field(
        default=False, description="Send nothing; show what would be sent. Same as --dry-run."
    )
    auto_send: bool = Field(
        default=False,
        description='Let steps with mode = "auto" go without your approval. Off by default.',
    )
    save_to_sent: SaveToSent = Field(
        default=SaveToSent.AUTO,
        description='Copy each sent follow-up to Sent: "auto" (unless the server files it '
        'itself, as Gmail does), "always" or "never".',
    )
    drafts_folder: bool = Field(
        default=False,
        description="Also put each queued draft in your IMAP Drafts folder, to edit and send "
        "from your own mail client; ghostwatch removes it once it sends, skips or cancels it.",
    )
    hourly_cap: int = Field(default=20, ge=1, le=1000, description="Sends per hour, all clients.")
    per_client_daily: int = Field(
        default=1, ge=1, le=20, description="Messages per client per day (client's local day)."
    )
    spread_minutes: int = Field(
        default=40, ge=0, le=600, description="Spread sends over this many minutes, no burst."
    )
    queue_ahead_hours: float = Field(
        default=24.0, ge=0, le=24 * 14, description="Queue drafts this long before they are due."
    )
    max_attempts: int = Field(
        default=6, ge=1, le=50, description="Temporary refusals before a message is failed."
    )
    retry_minutes: float = Field(
        default=10.0, gt=0, le=24 * 60, description="First retry delay, doubled each time."
    )


class DaemonSettings(_Strict):
    """How ``ghostwatch run`` watches and polls (``[daemon]``)."""

    poll_minutes: float = Field(
        default=5.0, gt=0, le=24 * 60,
        description="Full sync-and-send pass for every account this often.",
    )  # fmt: skip
    idle: bool = Field(
        default=True, description="Watch INBOX with IMAP IDLE to notice replies within seconds."
    )
    idle_renew_minutes: float = Field(
        default=9.0, gt=0, le=29, description="Re-issue IDLE this often (RFC 2177: under 29)."
    )
    scale_out: bool = Field(
        default=False,
        description="Several `ghostwatch run` processes share one PostgreSQL database, each "
        "account served by one of them at a time (leases).",
    )
    lease_seconds: float = Field(
        default=60.0, ge=3, le=3600,
        description="How long a dead process keeps its accounts before another takes them.",
    )  # fmt: skip


class ApprovalSettings(_Strict):
    """The digest and approving by reply (``[approval]``)."""

    digest_to: str | None = Field(
        default=None, description="Where digests go (default: the account's own address)."
    )
    times: list[str] = Field(
        default_factory=lambda: ["08:30"],
        description="Local times (HH:MM, in [defaults] time_zone) to send the digest.",
    )
    days: list[str] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"],
        description="Days the digest is sent on.",
    )
    send_when_empty: bool = Field(
        default=False, description="Send a digest even when nothing is new."
    )
    token_hours: float = Field(
        default=72.0, gt=0, le=24 * 30, description="How long a digest's commands are accepted."
    )
    plus_addressing: bool = Field(
        default=True,
        description="Reply-To is you+gw-TOKEN@domain; set false for providers without plus "
        "addressing (the token then travels in the Subject only).",
    )
    reply_alias: str | None = Field(
        default=None, description="Reply-To address when plus_addressing is false."
    )
    authserv_id: str | None = Field(
        default=None,
        description="Your provider's Authentication-Results authserv-id (e.g. mx.google.com); "
        "with require_auth, only its topmost header is trusted.",
    )
    require_auth: list[str] = Field(
        default_factory=list,
        description='Methods that must pass for a reply to count: any of "dkim", "spf", "dmarc".',
    )
    require_in_sent: bool = Field(
        default=False, description="Only accept a reply that is also in your Sent folder."
    )
    key_file: Path | None = Field(
        default=None,
        description="HMAC key for digest tokens (default: digest.key in the state directory).",
    )

    @field_validator("digest_to", "reply_alias")
    @classmethod
    def _addr(cls, value: str | None) -> str | None:
        return check_address(value) if value is not None else None

    @field_validator("times")
    @classmethod
    def _times(cls, value: list[str]) -> list[str]:
        import re

        for t in value:
            if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", t):
                raise ValueError(f"{t!r} is not a time of day: write it as HH:MM, e.g. '08:30'")
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        out = [d.strip().lower()[:3] for d in value]
        if not out or any(d not in days for d in out):
            raise ValueError(f"{value!r}: use a non-empty list of {', '.join(days)}")
        return out

    @field_validator("require_auth")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        bad = [m for m in value if m not in ("dkim", "spf", "dmarc")]
        if bad:
            raise ValueError(f"unknown method(s) {bad}: use dkim, spf, dmarc")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.require_auth and not self.authserv_id:
            raise ValueError("require_auth needs authserv_id (whose headers to trust)")
        if not self.plus_addressing and self.reply_alias is None:
            raise ValueError("plus_addressing = false needs reply_alias")
        return self


class MetricsSettings(_Strict):
    """Prometheus metrics of ``ghostwatch run`` (``[metrics]``); off unless ``listen`` is set."""

    listen: str | None = Field(
        default=None,
        pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$",
        description='Address to serve /metrics on, e.g. "127.0.0.1:9464" (loopback: the '
        "figures name your accounts).",
    )


class LogSettings(_Strict):
    level: str = Field(
        default="info", pattern=r"(?i)^(debug|info|warning|error)$", description="Log level."
    )
    format: str = Field(
        default="auto",
        pattern=r"^(auto|json|console)$",
        description="json (one object a line, for journald), console, or auto (console "
        "on a terminal).",
    )


class Settings(BaseSettings):
    """The whole configuration file."""

    model_config = SettingsConfigDict(
        env_prefix="GHOSTWATCH_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    profile: ProfileSettings = Field(default_factory=ProfileSettings)
    sending: SendingSettings = Field(default_factory=SendingSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)
    accounts: list[AccountSettings] = Field(default_factory=list)
    #: ``[defaults]``, ``[[clients]]``, ``[[rules]]`` and ``[policies.NAME]`` of the file.
    policy: PolicySettings = Field(default_factory=PolicySettings)

    @model_validator(mode="before")
    @classmethod
    def _gather_policy(cls, data: Any) -> Any:
        # The policy keys sit at the top level of the file for readability; they are
        # validated together because rules and clients refer to policies by name.
        if isinstance(data, dict) and "policy" not in data:
            picked = {k: data[k] for k in POLICY_KEYS if k in data}
            if picked:
                data = {k: v for k, v in data.items() if k not in POLICY_KEYS}
                data["policy"] = picked
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment wins over them.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _unique_accounts(self) -> Self:
        seen: set[str] = set()
        for account in self.accounts:
            if account.name in seen:
                raise ValueError(f"account name {account.name!r} is used twice")
            seen.add(account.name)
        return self

    def account(self, name: str) -> AccountSettings:
        for account in self.accounts:
            if account.name == name:
                return account
        known = ", ".join(a.name for a in self.accounts) or "none configured"
        raise ConfigError(f"no account named {name!r} (known: {known})")


def find_config(explicit: Path | None) -> Path:
    """Resolve the config path in the documented order; raise if none exists."""
    if explicit is not None:
        candidates = [explicit]
    elif os.environ.get("GHOSTWATCH_CONFIG"):
        candidates = [Path(os.environ["GHOSTWATCH_CONFIG"])]
    else:
        candidates = list(DEFAULT_SEARCH_PATHS)
    for candidate in candidates:
        path = candidate.expanduser()
        if path.is_file():
            return path
    tried = ", ".join(str(c) for c in candidates)
    raise ConfigNotFoundError(
        f"no configuration file found (tried {tried}). Copy config.example.toml there, "
        "or pass --config PATH."
    )


def _loc(loc: tuple[int | str, ...]) -> str:
    if loc[:1] == ("policy",):
        loc = loc[1:]
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _format_errors(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {_loc(err['loc'])}: {msg}")
    return "\n".join(lines)


def _uses_plaintext_password(data: dict[str, Any]) -> list[str]:
    keys = []
    accounts = data.get("accounts")  # not validated yet: may be any TOML value
    for i, account in enumerate(accounts if isinstance(accounts, list) else []):
        if not isinstance(account, dict):
            continue
        for proto in ("imap", "smtp"):
            server = account.get(proto)
            if isinstance(server, dict) and "password" in server:
                keys.append(f"accounts[{i}].{proto}.password")
    return keys


def load_config(explicit: Path | None = None) -> tuple[Settings, Path]:
    """Find, read and validate the configuration; errors name file, key and problem."""
    path = find_config(explicit)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_config(raw, path), path


def parse_config(raw: bytes, path: Path) -> Settings:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except RecursionError as exc:  # tomllib recurses once per nested array/inline table
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from exc
    plaintext = _uses_plaintext_password(data)
    if plaintext:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{path}: {plaintext[0]}: a plaintext password is only accepted when the "
                f"file is readable by its owner alone (mode is {stat.filemode(mode)}). "
                f"Run: chmod 600 {path}   (better: use password_command or "
                "password_credential)"
            )
    # Settings(**data) would pass "_env_file", "_cli_parse_args", ... to pydantic-settings
    # as constructor options; no field starts with "_", so these are unknown keys.
    reserved = [key for key in data if key.startswith("_")]
    if reserved:
        raise ConfigError(
            f"{path}: invalid configuration\n  {reserved[0]}: Extra inputs are not permitted"
        )
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from exc
