#!/usr/bin/env bash
# Install the system packages ghostwatch's integration tests and benchmarks need:
# Dovecot (IMAP, LMTP, Sieve), Postfix, the PostgreSQL 15 server binaries, and
# Chromium (headless, to look at the digest's HTML as a phone shows it).
# Recipe: ../shared/MAILSTACK.md. Idempotent: does nothing when all are present.
set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
MAIL_PACKAGES=(dovecot-imapd dovecot-lmtpd dovecot-sieve postfix chromium)

is_installed() {
    # "install ok installed" only; a removed-but-configured package doesn't count.
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

missing=()
for pkg in "${MAIL_PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done
if [[ ! -x "$PG_BIN/initdb" || ! -x "$PG_BIN/pg_ctl" || ! -x "$PG_BIN/postgres" ]]; then
    missing+=(postgresql-15)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-system-deps: dovecot, postfix, chromium and PostgreSQL 15 already installed; nothing to do."
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "install-system-deps: missing packages: ${missing[*]}" >&2
    echo "Run as root:  sudo bash scripts/install-system-deps.sh" >&2
    exit 1
fi

echo "install-system-deps: installing ${missing[*]}"
apt-get update -qq
# Without the preselection, postfix's debconf asks for a mailer type; "No
# configuration" also means no system main.cf, so nothing listens on port 25.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# The postinst scripts try to start the system services; without systemd that
# fails (or policy-rc.d refuses) harmlessly, but must not abort the install.
servers=()
for pkg in "${missing[@]}"; do
    [[ "$pkg" == chromium ]] || servers+=("$pkg")
done
if [[ ${#servers[@]} -gt 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${servers[@]}"
fi
if [[ " ${missing[*]} " == *" chromium "* ]]; then
    # Only the browser: its recommends (extensions, GPU drivers) are not needed headless.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
fi

# Tests run their own instances from temp dirs; don't leave system ones running
# (they would hold the default ports and confuse anyone reading `ps`).
if command -v doveadm >/dev/null 2>&1 && [[ -e /run/dovecot/master.pid ]]; then
    doveadm stop >/dev/null 2>&1 || true
fi
if command -v postfix >/dev/null 2>&1 && [[ -e /etc/postfix/main.cf ]]; then
    postfix status >/dev/null 2>&1 && { postfix stop >/dev/null 2>&1 || true; }
fi

for pkg in "${MAIL_PACKAGES[@]}"; do
    is_installed "$pkg" || { echo "install-system-deps: $pkg failed to install" >&2; exit 1; }
done
[[ -x "$PG_BIN/initdb" ]] || { echo "install-system-deps: $PG_BIN/initdb still missing" >&2; exit 1; }
echo "install-system-deps: done."
