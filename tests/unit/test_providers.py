"""Provider presets: lookups by address and MX, and config snippets that load as written."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ghostwatch.config import Security, Settings, parse_config
from ghostwatch.providers import Provider, all_providers, by_address, by_mx, config_snippet

PROVIDERS = all_providers()
PASSWORD_COMMAND = "pass show mail/work"
OAUTH = [p for p in PROVIDERS if p.auth in ("oauth2", "app_password_or_oauth2")]
NOT_OAUTH = [p for p in PROVIDERS if p not in OAUTH]


def key(provider: Provider | None) -> str | None:
    return None if provider is None else provider.key


def load(tmp_path: Path, snippet: str) -> Settings:
    """Parse ``snippet`` the way ghostwatch reads its config file (mode 0600)."""
    path = tmp_path / "config.toml"
    path.write_text(snippet, encoding="utf-8")
    path.chmod(0o600)
    return parse_config(path.read_bytes(), path)


def snippet_for(
    provider: Provider,
    *,
    account_name: str = "work",
    password_command: str | None = PASSWORD_COMMAND,
    token_command: str | None = None,
) -> str:
    domain = provider.domains[0] if provider.domains else "example.it"
    return config_snippet(
        provider,
        account_name=account_name,
        address=f"alice@{domain}",
        password_command=password_command,
        token_command=token_command,
    )


# -- the table itself ---------------------------------------------------------------


def test_keys_are_unique_and_all_providers_is_stable() -> None:
    """Each preset has its own key, and all_providers returns the same tuple each time."""
    keys = [p.key for p in PROVIDERS]
    assert len(keys) == len(set(keys))
    assert all_providers() == PROVIDERS


def test_no_domain_or_mx_suffix_belongs_to_two_providers() -> None:
    """A domain or MX suffix listed twice would make a lookup depend on table order."""
    domains = [d for p in PROVIDERS for d in p.domains]
    suffixes = [s for p in PROVIDERS for s in p.mx_suffixes]
    assert len(domains) == len(set(domains))
    assert len(suffixes) == len(set(suffixes))


def test_domains_and_suffixes_are_lowercase_bare_names() -> None:
    """Table entries are stored normalised, so lookups only normalise their input."""
    for provider in PROVIDERS:
        for name in (*provider.domains, *provider.mx_suffixes):
            assert name == name.strip().lower().strip("."), (provider.key, name)
            assert "@" not in name and " " not in name


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.key)
def test_security_values_and_ports_are_valid(provider: Provider) -> None:
    """Security is one ghostwatch.config accepts (never "none"), and ports fit the mode."""
    for server in (provider.imap, provider.smtp):
        assert Security(server.security) in (Security.TLS, Security.STARTTLS)
        assert server.host and server.host == server.host.lower()
    assert (provider.imap.port, provider.imap.security) in ((993, "tls"), (143, "starttls"))
    assert (provider.smtp.port, provider.smtp.security) in ((465, "tls"), (587, "starttls"))


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.key)
def test_every_preset_explains_itself(provider: Provider) -> None:
    """Notes are short user-facing text, and a preset can be found by address or by MX."""
    assert provider.name and provider.notes.endswith(".")
    assert len(provider.notes) < 450
    assert provider.domains or provider.mx_suffixes


def test_sent_copy_flags_match_the_documented_behaviour() -> None:
    """Gmail and Microsoft file SMTP sends in Sent themselves; the rest are not assumed to."""
    filing = {p.key for p in PROVIDERS if p.saves_sent_copy}
    assert filing == {"gmail", "outlook", "microsoft365"}
    gmail = by_address("a@gmail.com")
    assert gmail is not None and gmail.sent_folder_hint == "[Gmail]/Sent Mail"


# -- lookups by address ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("alice@gmail.com", "gmail"),
        ("alice@googlemail.com", "gmail"),
        ("alice@outlook.com", "outlook"),
        ("alice@hotmail.it", "outlook"),
        ("alice@live.com", "outlook"),
        ("alice@contoso.onmicrosoft.com", "microsoft365"),
        ("alice@icloud.com", "icloud"),
        ("alice@me.com", "icloud"),
        ("alice@mac.com", "icloud"),
        ("alice@fastmail.com", "fastmail"),
        ("alice@yahoo.it", "yahoo"),
        ("alice@zoho.com", "zoho"),
        ("alice@aruba.it", "aruba"),
        ("alice@libero.it", "libero"),
        ("alice@inwind.it", "libero"),
        ("alice@blu.it", "libero"),
        ("alice@iol.it", "libero"),
        ("alice@virgilio.it", "virgilio"),
        ("alice@tim.it", "tim"),
        ("alice@alice.it", "alice"),
        ("alice@pec.it", "aruba_pec"),
        ("alice@legalmail.it", "legalmail"),
        ("alice@postecert.it", "postecert"),
    ],
)
def test_by_address_finds_the_provider_of_its_domain(address: str, expected: str) -> None:
    """Each provider's own address domains map to its preset."""
    assert key(by_address(address)) == expected


def test_by_address_ignores_case_and_surrounding_noise() -> None:
    """Upper case, spaces, angle brackets and a trailing dot do not defeat the lookup."""
    assert key(by_address("Alice.Rossi@GMail.COM")) == "gmail"
    assert key(by_address("  <alice@Libero.IT>  ")) == "libero"
    assert key(by_address("alice@gmail.com.")) == "gmail"


@pytest.mark.parametrize(
    "address",
    [
        "alice@example.com",
        "alice@notgmail.com",  # a suffix of the name, but not at a label boundary
        "alice@gmail.com.evil.example",
        "alice@tin.it",  # TIN: no confirmed settings, left out
        "no-at-sign.gmail.com",
        "alice@",
        "",
    ],
)
def test_by_address_unknown_or_malformed_is_none(address: str) -> None:
    """Unknown domains, look-alikes and strings without a domain give None."""
    assert by_address(address) is None


# -- lookups by MX --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mx_hosts", "expected"),
    [
        # Google Workspace: the classic ASPMX set and the newer single MX.
        (["aspmx.l.google.com", "alt1.aspmx.l.google.com"], "gmail"),
        (["smtp.google.com"], "gmail"),
        (["aspmx2.googlemail.com"], "gmail"),
        # Microsoft 365 custom domains, old and new (DNSSEC) MX zones.
        (["studio-rossi-it.mail.protection.outlook.com"], "microsoft365"),
        (["studio-rossi-it.a1b2c3.mx.microsoft"], "microsoft365"),
        # Outlook.com consumer domains live under olc.protection.outlook.com.
        (["outlook-com.olc.protection.outlook.com"], "outlook"),
        (["mx01.mail.icloud.com", "mx02.mail.icloud.com"], "icloud"),
        (["in1-smtp.messagingengine.com"], "fastmail"),
        (["mx.zoho.com", "mx2.zoho.com"], "zoho_workplace"),
        (["mx.zoho.eu"], "zoho_workplace_eu"),
        (["mx.aruba.it"], "aruba"),
        (["mx.pec.aruba.it"], "aruba_pec"),
        (["mx.cert.legalmail.it"], "legalmail"),
    ],
)
def test_by_mx_finds_the_host_of_a_custom_domain(mx_hosts: list[str], expected: str) -> None:
    """MX host names under a preset's suffix map to that preset."""
    assert key(by_mx(mx_hosts)) == expected


def test_by_mx_longest_suffix_wins() -> None:
    """mx.pec.aruba.it is Aruba PEC, not Aruba mail, although both end in aruba.it."""
    assert key(by_mx(["mx.pec.aruba.it"])) == "aruba_pec"
    assert key(by_mx(["mx.aruba.it"])) == "aruba"


def test_by_mx_normalises_dns_names() -> None:
    """Trailing dots and upper case, as DNS libraries return them, still match."""
    assert key(by_mx(["ASPMX.L.GOOGLE.COM."])) == "gmail"
    assert key(by_mx([" In1-SMTP.messagingengine.com. "])) == "fastmail"


def test_by_mx_first_matching_host_decides() -> None:
    """Hosts are taken in preference order; unknown ones are skipped, not fatal."""
    hosts = ["filter.antispam.example", "aspmx.l.google.com", "mx.aruba.it"]
    assert key(by_mx(hosts)) == "gmail"
    assert key(by_mx(("mx.aruba.it", "aspmx.l.google.com"))) == "aruba"


def test_by_mx_accepts_a_single_host_string() -> None:
    """A bare string is one host name, not a sequence of one-letter names."""
    assert key(by_mx("aspmx.l.google.com")) == "gmail"


@pytest.mark.parametrize(
    "mx_hosts",
    [
        [],
        [""],
        ["mx.example.com"],
        ["mail.evilgoogle.com"],  # ends in "google.com" but not at a label boundary
        ["google.com.attacker.example"],
        ["mta5.am0.yahoodns.net"],  # shared by Yahoo and AOL: deliberately unmatched
    ],
)
def test_by_mx_unknown_is_none(mx_hosts: list[str]) -> None:
    """No preset for unknown or look-alike MX hosts."""
    assert by_mx(mx_hosts) is None


def test_italian_providers_are_present() -> None:
    """The large Italian mailbox and PEC providers have presets."""
    keys = {p.key for p in PROVIDERS}
    assert {"aruba", "libero", "virgilio", "tim", "alice"} <= keys
    assert {"aruba_pec", "legalmail", "postecert"} <= keys


def test_pec_presets_warn_that_pec_is_not_for_writing_to_clients() -> None:
    """Every PEC preset's notes say what PEC is and that it is not for client mail."""
    for name in ("aruba_pec", "legalmail", "postecert"):
        notes = next(p for p in PROVIDERS if p.key == name).notes
        assert "PEC" in notes and "certified" in notes
        assert "not the one you write to clients from" in notes


# -- config snippets ------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.key)
def test_snippet_parses_and_carries_the_preset(tmp_path: Path, provider: Provider) -> None:
    """Each preset's snippet loads with parse_config and keeps its hosts, ports, security."""
    settings = load(tmp_path, snippet_for(provider))
    (account,) = settings.accounts
    assert account.name == "work"
    assert account.address.startswith("alice@")
    for got, want in ((account.imap, provider.imap), (account.smtp, provider.smtp)):
        assert got is not None
        assert (got.host, got.port, got.security.value) == (want.host, want.port, want.security)
        assert got.username == account.address
        assert got.password_command == PASSWORD_COMMAND
    assert account.smtp is not None and account.smtp.token_command is None


@pytest.mark.parametrize("provider", OAUTH, ids=lambda p: p.key)
def test_oauth_snippet_sends_with_token_and_reads_with_password(
    tmp_path: Path, provider: Provider
) -> None:
    """With token_command, SMTP uses XOAUTH2 only and IMAP keeps the password source."""
    text = snippet_for(provider, token_command="oauth2-token --account work")
    account = load(tmp_path, text).accounts[0]
    assert account.smtp is not None
    assert account.smtp.token_command == "oauth2-token --account work"
    assert account.smtp.password_command is None
    assert account.imap.password_command == PASSWORD_COMMAND
    assert "IMAP with OAuth2 (XOAUTH2) yet" in text


@pytest.mark.parametrize("provider", NOT_OAUTH, ids=lambda p: p.key)
def test_token_command_is_refused_for_password_only_providers(provider: Provider) -> None:
    """A token_command for a provider without OAuth2 is an error, not silently dropped."""
    with pytest.raises(ValueError, match="OAuth2"):
        snippet_for(provider, token_command="oauth2-token")


def test_snippet_without_password_command_reads_an_environment_variable(
    tmp_path: Path,
) -> None:
    """No password_command: both servers use password_env named after the account."""
    gmail = by_address("a@gmail.com")
    assert gmail is not None
    text = snippet_for(gmail, account_name="studio.rossi-2", password_command=None)
    account = load(tmp_path, text).accounts[0]
    assert account.imap.password_env == "GHOSTWATCH_STUDIO_ROSSI_2_PASSWORD"
    assert account.smtp is not None
    assert account.smtp.password_env == "GHOSTWATCH_STUDIO_ROSSI_2_PASSWORD"


def test_oauth_snippet_without_password_command_still_loads(tmp_path: Path) -> None:
    """Token for SMTP, environment variable for IMAP: the block is still valid."""
    m365 = by_mx(["x.mail.protection.outlook.com"])
    assert m365 is not None
    text = snippet_for(m365, password_command=None, token_command="tok")
    account = load(tmp_path, text).accounts[0]
    assert account.imap.password_env == "GHOSTWATCH_WORK_PASSWORD"
    assert account.smtp is not None and account.smtp.token_command == "tok"


def test_snippet_escapes_quotes_backslashes_and_control_characters(tmp_path: Path) -> None:
    """Values with TOML metacharacters come back byte for byte."""
    command = 'pass show "mail/work" \\ | head -n1\t# not a comment\x7f'
    provider = by_address("a@libero.it")
    assert provider is not None
    text = snippet_for(provider, password_command=command)
    assert tomllib.loads(text)["accounts"][0]["imap"]["password_command"] == command
    assert load(tmp_path, text).accounts[0].imap.password_command == command


def test_snippet_comments_carry_the_provider_notes() -> None:
    """The auth note is in the block as comments, and every line is short."""
    for provider in PROVIDERS:
        text = snippet_for(provider)
        comments = " ".join(
            line.removeprefix("# ") for line in text.splitlines() if line.startswith("#")
        )
        assert provider.notes in comments
        assert all(len(line) <= 100 for line in text.splitlines() if line.startswith("#"))


def test_sent_copy_comment_matches_what_ghostwatch_does() -> None:
    """Gmail is told no copy is added; Microsoft is told how to avoid a duplicate."""
    gmail = by_address("a@gmail.com")
    m365 = by_mx(["x.mail.protection.outlook.com"])
    aruba = by_address("a@aruba.it")
    assert gmail is not None and m365 is not None and aruba is not None
    assert "adds no second copy" in snippet_for(gmail)
    assert 'save_to_sent = "never"' in snippet_for(m365)
    assert "save_to_sent" not in snippet_for(aruba)
