"""Presets for well-known mail providers, for the ``ghostwatch init`` wizard.

A preset says where a provider's IMAP and SMTP servers are, how it wants you to sign
in, and what it does with the mail you send. Look one up from an address
(:func:`by_address`) or, for a custom domain, from its MX host names (:func:`by_mx`;
the caller does the DNS lookup), then turn it into an ``[[accounts]]`` block with
:func:`config_snippet`.

Every entry names, in a comment, the pages its hosts and ports were checked against.
Providers whose settings could not be confirmed are left out rather than guessed.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Provider", "Server", "all_providers", "by_address", "by_mx", "config_snippet"]


@dataclass(frozen=True, slots=True)
class Server:
    """One endpoint: ``tls`` is implicit TLS (993, 465), ``starttls`` upgrades (143, 587)."""

    host: str
    port: int
    security: Literal["tls", "starttls"]


@dataclass(frozen=True, slots=True)
class Provider:
    """A mail provider's preset.

    ``domains`` are the provider's own address domains (subdomains match too);
    ``mx_suffixes`` recognise custom domains whose mail the provider hosts.
    ``saves_sent_copy`` is True when the provider itself files, in Sent, what its
    SMTP server sent, so a client need not append a copy.
    """

    key: str
    name: str
    domains: tuple[str, ...]
    mx_suffixes: tuple[str, ...]
    imap: Server
    smtp: Server
    auth: Literal["password", "app_password", "oauth2", "app_password_or_oauth2"]
    notes: str
    sent_folder_hint: str | None
    saves_sent_copy: bool


_PEC_NOTE = (
    "PEC (posta elettronica certificata) is certified mail with legal value: every "
    "message you send brings acceptance and delivery receipts into your inbox, and a PEC "
    "mailbox is generally not the one you write to clients from."
)


_SENT_COPY_GMAIL = (
    "Gmail files each message its SMTP server sends in Sent by itself; ghostwatch "
    'recognises Gmail and, with [sending] save_to_sent = "auto", adds no second copy.'
)
_SENT_COPY_OTHER = (
    "This provider files each message its SMTP server sends in Sent by itself. "
    '[sending] save_to_sent = "auto" recognises that only for Gmail, so ghostwatch would '
    'add a second copy: set save_to_sent = "never" if all your accounts behave like this.'
)

_PROVIDERS: tuple[Provider, ...] = (
    # Gmail and Google Workspace.
    # Hosts/ports: Thunderbird ISPDB ispdb/googlemail.com.xml (also lists google.com as
    # the Workspace MX) and Google's IMAP/SMTP page as quoted at
    # https://mailconfiguration.com/gmail/gmail-imap-pop-smtp-settings/ ("Use port 465,
    # or port 587 if your client begins with plain text before issuing the STARTTLS").
    # Sent copy: https://support.google.com/mail/answer/78892 ("Sent messages are
    # automatically copied to the Gmail/Sent folder if your email client uses SMTP").
    Provider(
        key="gmail",
        name="Gmail / Google Workspace",
        domains=("gmail.com", "googlemail.com"),
        mx_suffixes=("google.com", "googlemail.com"),
        imap=Server("imap.gmail.com", 993, "tls"),
        smtp=Server("smtp.gmail.com", 465, "tls"),
        auth="app_password_or_oauth2",
        notes=(
            "Gmail no longer accepts your account password from mail programs: turn on "
            "2-Step Verification and create an app password, or send with OAuth2 "
            "(token_command). With Google Workspace your admin may have to allow IMAP "
            "and app passwords first."
        ),
        sent_folder_hint="[Gmail]/Sent Mail",  # localised, e.g. "[Gmail]/Posta inviata"
        saves_sent_copy=True,
    ),
    # Outlook.com, Hotmail, Live, MSN (Microsoft's consumer mail).
    # Hosts/ports and "Outlook.com requires the use of Modern Auth / OAuth2":
    # https://support.microsoft.com/en-us/office/pop-imap-and-smtp-settings-8361e398-8af4-4e97-b147-6c6c4ac95353
    # MX suffix: Thunderbird ISPDB ispdb/hotmail.com.xml (olc.protection.outlook.com).
    # Sent copy: no Microsoft page found; client maintainers report it, e.g.
    # https://github.com/thunderbird/thunderbird-android/issues/7134
    Provider(
        key="outlook",
        name="Outlook.com / Hotmail / Live",
        domains=(
            "outlook.com",
            "outlook.it",
            "hotmail.com",
            "hotmail.it",
            "live.com",
            "live.it",
            "msn.com",
        ),
        mx_suffixes=("olc.protection.outlook.com",),
        imap=Server("outlook.office365.com", 993, "tls"),
        smtp=Server("smtp-mail.outlook.com", 587, "starttls"),
        auth="oauth2",
        notes=(
            "Microsoft requires OAuth2 (Modern Auth) for Outlook.com and is removing "
            "password sign-in, so send with token_command; ghostwatch cannot yet read "
            "over IMAP with OAuth2. Turn on IMAP in Outlook.com under Settings > Mail > "
            "Forwarding and IMAP."
        ),
        sent_folder_hint=None,
        saves_sent_copy=True,
    ),
    # Microsoft 365 (Exchange Online), including custom domains.
    # Hosts/ports: Thunderbird ISPDB ispdb/office365.com.xml and
    # https://learn.microsoft.com/exchange/mail-flow-best-practices/how-to-set-up-a-multifunction-device-or-application-to-send-email-using-microsoft-365-or-office-365
    # (SMTP AUTH on smtp.office365.com, off for tenants created after January 2020).
    # MX: <domain>.mail.protection.outlook.com, and <domain>.<zone>.mx.microsoft for
    # domains added since 2024:
    # https://techcommunity.microsoft.com/t5/exchange-team-blog/implementing-inbound-smtp-dane-with-dnssec-for-exchange-online/ba-p/3939694
    # Sent copy ("Sent email will now be stored in the Sent Items folder"):
    # https://blogs.technet.microsoft.com/exchange/2018/04/20/changes-coming-to-the-smtp-authenticated-submission-client-protocol/
    Provider(
        key="microsoft365",
        name="Microsoft 365",
        domains=("onmicrosoft.com",),
        mx_suffixes=("mail.protection.outlook.com", "mx.microsoft"),
        imap=Server("outlook.office365.com", 993, "tls"),
        smtp=Server("smtp.office365.com", 587, "starttls"),
        auth="oauth2",
        notes=(
            "Microsoft 365 has turned off basic (password) authentication for most "
            "tenants, so OAuth2 (token_command) is required to send, and your admin must "
            "allow SMTP AUTH for the mailbox. ghostwatch cannot yet read over IMAP with "
            "OAuth2: reading works only where a password is still accepted."
        ),
        sent_folder_hint="Sent Items",
        saves_sent_copy=True,
    ),
    # iCloud Mail. Hosts/ports: https://support.apple.com/HT202304 (via Thunderbird
    # ISPDB ispdb/me.com.xml, which also gives the name part as the IMAP user name;
    # setup guides agree on the app-specific password). iCloud+ custom domains use MX
    # mx01.mail.icloud.com / mx02.mail.icloud.com (seen in published DNS zones).
    Provider(
        key="icloud",
        name="iCloud Mail",
        domains=("icloud.com", "me.com", "mac.com"),
        mx_suffixes=("mail.icloud.com",),
        imap=Server("imap.mail.me.com", 993, "tls"),
        smtp=Server("smtp.mail.me.com", 587, "starttls"),
        auth="app_password",
        notes=(
            "iCloud needs an app-specific password, created at appleid.apple.com with "
            "two-factor authentication on. If IMAP refuses the full address as user name, "
            "use the part before the @."
        ),
        sent_folder_hint="Sent Messages",
        saves_sent_copy=False,
    ),
    # Fastmail. https://www.fastmail.com/help/technical/servernamesandports.html
    # ("You will need to get an app password"; SMTP 465 "Enabled, but not STARTTLS").
    # MX in1-smtp.messagingengine.com / in2-smtp.messagingengine.com.
    Provider(
        key="fastmail",
        name="Fastmail",
        domains=("fastmail.com", "fastmail.fm"),
        mx_suffixes=("messagingengine.com",),
        imap=Server("imap.fastmail.com", 993, "tls"),
        smtp=Server("smtp.fastmail.com", 465, "tls"),
        auth="app_password",
        notes=(
            "Fastmail needs an app password (Settings > Privacy & Security > App "
            "passwords); your normal password does not work over IMAP or SMTP."
        ),
        sent_folder_hint="Sent",
        saves_sent_copy=False,
    ),
    # Yahoo Mail. Thunderbird ISPDB ispdb/yahoo.com.xml (IMAP 993 SSL, SMTP 465 SSL or
    # 587 STARTTLS), citing
    # https://help.yahoo.com/kb/new-mail-for-desktop/imap-server-settings-yahoo-mail-sln4075.html
    # No MX suffix: yahoodns.net also serves AOL.
    Provider(
        key="yahoo",
        name="Yahoo Mail",
        domains=("yahoo.com", "yahoo.it", "ymail.com", "rocketmail.com"),
        mx_suffixes=(),
        imap=Server("imap.mail.yahoo.com", 993, "tls"),
        smtp=Server("smtp.mail.yahoo.com", 465, "tls"),
        auth="app_password",
        notes=(
            "Yahoo needs an app password: turn on two-step verification, then generate "
            "one under Account Security; your Yahoo password is refused by mail programs."
        ),
        sent_folder_hint="Sent",
        saves_sent_copy=False,
    ),
    # Zoho Mail, personal addresses. Thunderbird ISPDB ispdb/zoho.com.xml, citing
    # https://www.zoho.com/mail/help/imap-access.html and
    # https://www.zoho.com/mail/help/zoho-smtp.html
    # Each data centre has its own hosts (.com, .eu, .in, ...).
    Provider(
        key="zoho",
        name="Zoho Mail",
        domains=("zoho.com", "zohomail.com"),
        mx_suffixes=(),
        imap=Server("imap.zoho.com", 993, "tls"),
        smtp=Server("smtp.zoho.com", 465, "tls"),
        auth="password",
        notes=(
            "Turn on IMAP access in Zoho Mail settings first; with two-factor "
            "authentication use an application-specific password. An account in Zoho's "
            "EU data centre uses imap.zoho.eu and smtp.zoho.eu instead."
        ),
        sent_folder_hint=None,
        saves_sent_copy=False,
    ),
    # Zoho Mail for a custom domain: organisation accounts use the "pro" hosts, per
    # copies of Zoho's IMAP page ("Organization users with a domain-based email address
    # ... imappro.zoho.com", "smtppro.zoho.com 465 with SSL"), e.g.
    # https://wiki.brostweb.com/books/external-accounts/chapter/zoho/export/html
    # MX mx.zoho.com, mx2.zoho.com, mx3.zoho.com.
    Provider(
        key="zoho_workplace",
        name="Zoho Mail (custom domain)",
        domains=(),
        mx_suffixes=("zoho.com",),
        imap=Server("imappro.zoho.com", 993, "tls"),
        smtp=Server("smtppro.zoho.com", 465, "tls"),
        auth="password",
        notes=(
            "Turn on IMAP access in Zoho Mail settings first (your admin may have to "
            "allow it); with two-factor authentication use an application-specific "
            "password."
        ),
        sent_folder_hint=None,
        saves_sent_copy=False,
    ),
    # The same in Zoho's EU data centre (MX mx.zoho.eu, mx2.zoho.eu, mx3.zoho.eu):
    # imappro.zoho.eu / smtppro.zoho.eu, as listed at
    # https://clean.email/blog/email-settings/zoho-mail-settings
    Provider(
        key="zoho_workplace_eu",
        name="Zoho Mail EU (custom domain)",
        domains=(),
        mx_suffixes=("zoho.eu",),
        imap=Server("imappro.zoho.eu", 993, "tls"),
        smtp=Server("smtppro.zoho.eu", 465, "tls"),
        auth="password",
        notes=(
            "Turn on IMAP access in Zoho Mail settings first (your admin may have to "
            "allow it); with two-factor authentication use an application-specific "
            "password."
        ),
        sent_folder_hint=None,
        saves_sent_copy=False,
    ),
    # Aruba, including custom domains whose mail Aruba hosts (MX mx.aruba.it).
    # https://guide.hosting.aruba.it/email/configurazione-email-pc-dispositivi-mobili/configurazione-casella-dominio-pc-mac-pop.aspx
    # (smtps.aruba.it; "La posta inviata attraverso il programma di posta non viene
    # conservata dal server"). Aruba's IMAP page was not available: imaps.aruba.it with
    # SSL is from an Aruba customer's guide (www.anvvf.it), ports 993/465 from client
    # configs that agree. IMAP as a separate service for a domain:
    # https://support.aruba.it/kb/a2490/expiration-of-the-imap-email-service-and-how-it-can-be-renewed.aspx
    Provider(
        key="aruba",
        name="Aruba",
        domains=("aruba.it",),
        mx_suffixes=("aruba.it",),
        imap=Server("imaps.aruba.it", 993, "tls"),
        smtp=Server("smtps.aruba.it", 465, "tls"),
        auth="password",
        notes=(
            "Use the mailbox password chosen when the mailbox was created. On some Aruba "
            "hosting plans IMAP is a separate service for the domain: if the login is "
            "refused, check in the Aruba control panel that it is active."
        ),
        sent_folder_hint=None,
        saves_sent_copy=False,
    ),
    # Libero Mail (Italiaonline): libero.it and the older inwind.it, blu.it, iol.it.
    # No Libero help page was available to check; imapmail.libero.it 993 SSL and
    # smtp.libero.it 465 SSL agree across several independent open-source client presets.
    Provider(
        key="libero",
        name="Libero Mail",
        domains=("libero.it", "inwind.it", "blu.it", "iol.it"),
        mx_suffixes=(),
        imap=Server("imapmail.libero.it", 993, "tls"),
        smtp=Server("smtp.libero.it", 465, "tls"),
        auth="password",
        notes="Use your Libero Mail address and password.",
        sent_folder_hint=None,
        saves_sent_copy=False,
    ),
    # Virgilio Mail (Italiaonline).
    # https://aiuto.virgilio.it/articolo/mail/configurare-virgilio-mail-con-client-di-posta-imap-e-smtp/
    # (via Thunderbird ISPDB ispdb/virgilio.it.xml: in.virgilio.it 993 SSL,
    # out.virgilio.it 465 SSL).
    Provider(
        key="virgilio",
        name="Virgilio Mail",
        domains=("virgilio.it",),
        mx_suffixes=(),
        imap=Server("in.virgilio.it", 993, "tls"),
        smtp=Server("out.virgilio.it", 465, "tls"),
        auth="password",
        notes="Use your Virgilio Mail address and password.",
        sent_folder_hint=None,
        saves_sent_copy=False,
    ),
    # TIM Mail (@tim.it).
    # https://www.tim.it/assistenza/assistenza-tecnica/mail/configurazione/protocolli-posta
    # (via Thunderbird ISPDB ispdb/tim.it.xml: imap.tim.it 143 and smtp.tim.it 587, both
    # STARTTLS). Implicit TLS on 993/465 could not be confirmed, so it is not used.
    Provider(
        key="tim",
        name="TIM Mail",
        domains=("tim.it",),
        mx_suffixes=(),
        imap=Server("imap.tim.it", 143, "starttls"),
        smtp=Server("smtp.tim.it", 587, "starttls"),
        auth="password",
        notes="Use your TIM Mail address and password.",
        sent_folder_hint=None,
        saves_sent_copy=False,
    ),
    # Alice Mail (@alice.it), now part of TIM Mail but on its own hosts.
    # Same TIM page, via Thunderbird ISPDB ispdb/alice.it.xml: in.alice.it 143 and
    # out.alice.it 587, both STARTTLS.
    Provider(
        key="alice",
        name="Alice Mail (TIM)",
        domains=("alice.it",),
        mx_suffixes=(),
        imap=Server("in.alice.it", 143, "starttls"),
        smtp=Server("out.alice.it", 587, "starttls"),
        auth="password",
        notes="Use your Alice Mail address and password.",
        sent_folder_hint=None,
        saves_sent_copy=False,
    ),
    # Aruba PEC (@pec.it, and pec.<your domain> with MX mx.pec.aruba.it).
    # https://guide.pec.it/posta-pec/configurare-casella-pec/bozza.aspx (smtps.pec.aruba.it
    # is mandatory for sending; a dedicated password with two-step verification),
    # https://guide.hosting.aruba.it/servizi/pec-su-dominio/configurazione-dns-e-record-mx.aspx
    # (MX), http://guide.pec.it/pec/faq/faq-pec.aspx (ordinary mail is rejected by
    # default). imaps.pec.aruba.it and the ports 993/465 (implicit TLS) are from client
    # configs that agree; Aruba's parameter table was not available.
    Provider(
        key="aruba_pec",
        name="Aruba PEC",
        domains=("pec.it",),
        mx_suffixes=("pec.aruba.it",),
        imap=Server("imaps.pec.aruba.it", 993, "tls"),
        smtp=Server("smtps.pec.aruba.it", 465, "tls"),
        auth="password",
        notes=(
            f"{_PEC_NOTE} By default Aruba PEC rejects messages from ordinary "
            "(non-PEC) addresses, so a client's reply may never arrive; with two-step "
            "verification on, create a dedicated password for mail programs."
        ),
        sent_folder_hint=None,
        saves_sent_copy=False,
    ),
    # Legalmail (InfoCert PEC). Hosts: InfoCert's Legalmail FAQ on https://help.infocert.it
    # ("server Legalmail (mbox.cert.legalmail.it e sendm.cert.legalmail.it)"); ports
    # 993/465 from client configs that agree. MX for certified domains
    # (mx.cert.legalmail.it): https://www.legalmail.it/documentazione/ . The 6 messages a
    # minute cap and the ban on automated sending: Legalmail terms, Art. 5, quoted in the
    # same FAQ.
    Provider(
        key="legalmail",
        name="Legalmail (InfoCert PEC)",
        domains=("legalmail.it",),
        mx_suffixes=("cert.legalmail.it",),
        imap=Server("mbox.cert.legalmail.it", 993, "tls"),
        smtp=Server("sendm.cert.legalmail.it", 465, "tls"),
        auth="password",
        notes=(
            f"{_PEC_NOTE} Legalmail's terms cap sending at 6 messages a minute and forbid "
            "automated sending without your direct action, so do not let ghostwatch send "
            "from it; the user name is often your InfoCert User ID, not the address."
        ),
        sent_folder_hint=None,
        saves_sent_copy=False,
    ),
    # Poste Italiane PEC (Postecert).
    # https://postecert.poste.it/pec/configurazione.shtml (via Thunderbird ISPDB
    # ispdb/postecert.it.xml: mail.postecert.it, IMAP 993 SSL, SMTP 465 SSL).
    Provider(
        key="postecert",
        name="Poste Italiane PEC (Postecert)",
        domains=("postecert.it",),
        mx_suffixes=(),
        imap=Server("mail.postecert.it", 993, "tls"),
        smtp=Server("mail.postecert.it", 465, "tls"),
        auth="password",
        notes=_PEC_NOTE,
        sent_folder_hint=None,
        saves_sent_copy=False,
    ),
)


def all_providers() -> tuple[Provider, ...]:
    """Every preset, in the order a wizard should offer them."""
    return _PROVIDERS


def _host(name: str) -> str:
    return name.strip().lower().rstrip(".")


def _under(host: str, suffix: str) -> bool:
    """True when ``host`` is ``suffix`` or a name below it (label boundary respected)."""
    return host == suffix or host.endswith("." + suffix)


def _best(host: str, field: Literal["domains", "mx_suffixes"]) -> Provider | None:
    """The provider with the longest entry of ``field`` that ``host`` falls under."""
    best: Provider | None = None
    best_len = 0
    for provider in _PROVIDERS:
        for suffix in getattr(provider, field):
            if len(suffix) > best_len and _under(host, suffix):
                best, best_len = provider, len(suffix)
    return best


def by_address(address: str) -> Provider | None:
    """The provider of ``address``'s domain (or a subdomain of it), case-insensitive."""
    _local, at, domain = address.strip().strip("<>").rpartition("@")
    domain = _host(domain)
    if not at or not domain:
        return None
    return _best(domain, "domains")


def by_mx(mx_hosts: Sequence[str]) -> Provider | None:
    """The provider hosting a custom domain, from its MX host names.

    Pure: the caller resolves the MX records. Hosts are taken in the order given
    (most preferred first); the first one that matches a preset decides.
    """
    hosts = (mx_hosts,) if isinstance(mx_hosts, str) else mx_hosts
    for raw in hosts:
        host = _host(raw)
        if host:
            found = _best(host, "mx_suffixes")
            if found is not None:
                return found
    return None


def _toml(value: str) -> str:
    """``value`` as a TOML basic string."""
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n"}
    escapes |= {"\f": "\\f", "\r": "\\r"}
    out = []
    for ch in value:
        if ch in escapes:
            out.append(escapes[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _comment(text: str) -> list[str]:
    lines = textwrap.wrap(text, width=86, break_long_words=False, break_on_hyphens=False)
    return ["# " + line for line in lines]


def _password_source(password_command: str | None, account_name: str) -> list[str]:
    if password_command is not None:
        return [f"password_command = {_toml(password_command)}"]
    env = "".join(c if c.isascii() and c.isalnum() else "_" for c in account_name.upper())
    return [
        "# Put the password in this environment variable, or use password_command.",
        f"password_env = {_toml(f'GHOSTWATCH_{env}_PASSWORD')}",
    ]


def _server(section: str, server: Server, username: str) -> list[str]:
    return [
        f"[accounts.{section}]",
        f"host = {_toml(server.host)}",
        f"port = {server.port}",
        f"security = {_toml(server.security)}",
        f"username = {_toml(username)}",
    ]


def config_snippet(
    provider: Provider,
    *,
    account_name: str,
    address: str,
    password_command: str | None,
    token_command: str | None,
) -> str:
    """A commented ``[[accounts]]`` block for ``provider``, ready to paste into the config.

    With ``token_command`` (OAuth2 providers only) SMTP signs in with SASL XOAUTH2;
    IMAP still needs a password source. Without ``password_command`` the block reads
    the password from an environment variable named after the account.
    """
    oauth_capable = provider.auth in ("oauth2", "app_password_or_oauth2")
    if token_command is not None and not oauth_capable:
        raise ValueError(f"{provider.name} does not sign in with OAuth2: drop token_command")
    password = _password_source(password_command, account_name)

    lines = [f"# {provider.name} (ghostwatch preset {provider.key!r})."]
    lines += _comment(provider.notes)
    lines += [
        "[[accounts]]",
        f"name = {_toml(account_name)}",
        f"address = {_toml(address)}",
        "",
        *_server("imap", provider.imap, address),
    ]
    if oauth_capable:
        lines += _comment(
            "ghostwatch does not support IMAP with OAuth2 (XOAUTH2) yet: reading needs a "
            "password source (an app password where the provider offers one)."
        )
    lines += [*password, ""]
    lines += _server("smtp", provider.smtp, address)
    if token_command is not None:
        lines += [
            "# OAuth 2.0 (SASL XOAUTH2): the command prints a fresh access token.",
            f"token_command = {_toml(token_command)}",
        ]
    else:
        if provider.auth == "oauth2":
            lines += _comment(
                "This provider usually refuses passwords here: replace the password "
                "source with token_command, a command printing an OAuth2 access token."
            )
        elif provider.auth == "app_password_or_oauth2":
            lines += _comment(
                "Or replace the password source with token_command (OAuth2 access token)."
            )
        lines += password
    if provider.saves_sent_copy:
        lines += _comment(_SENT_COPY_GMAIL if provider.key == "gmail" else _SENT_COPY_OTHER)
    return "\n".join(lines) + "\n"
