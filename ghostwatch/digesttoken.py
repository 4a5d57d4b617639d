"""The security token of a digest, and the MAC that binds it to what the digest showed.

A digest lists queued drafts; the user approves them by replying. The reply is only
trusted when it carries the digest's token and that token, together with everything the
digest showed, verifies against a MAC made with a key that lives outside the database:

* the token is 128 random bits in lowercase base32 (RFC 4648 §6, no padding), so it is
  safe both in an address local part (RFC 5322 §3.4.1 ``dot-atom-text``) and in a
  Subject, and survives servers that change the case of addresses;
* it travels in the Subject as ``[gw:<token>]`` and, with plus addressing, in the reply
  address ``user+gw-<token>@domain`` (RFC 5233 subaddress);
* :func:`seal` is HMAC-SHA256 (RFC 2104) over a canonical JSON form of the token and the
  whole :class:`Binding`, so a changed row id, body or expiry in the database does not
  verify, and neither does a token from another digest.

Everything here is pure except :func:`load_or_create_key`. A token is valid while
``now < expires_at``: at ``expires_at`` exactly it has expired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.utils import getaddresses
from pathlib import Path

from ghostwatch.errors import GhostwatchError

__all__ = [
    "KEY_BYTES",
    "Binding",
    "KeyFileError",
    "body_hash",
    "find_token",
    "load_or_create_key",
    "new_token",
    "reply_address",
    "seal",
    "subject_tag",
    "verify",
]

#: Length of the MAC key, and of the key file.
KEY_BYTES = 32

_TOKEN_BYTES = 16
_BASE32_128_BITS = "[a-z2-7]{26}"  # ceil(128 / 5) base32 characters
_TOKEN_RE = re.compile(_BASE32_128_BITS)
_HASH_RE = re.compile("[0-9a-f]{64}")
# The tag may sit anywhere in the Subject: clients prepend "Re:", "R:", "AW:", "Fwd:",
# "[External]" and the like in any number, so no prefix grammar is assumed.
_SUBJECT_TAG_RE = re.compile(r"\[gw:(" + _BASE32_128_BITS + r")\]", re.IGNORECASE)
# "+gw-<token>" or, when the owner's address already had a tag, "+tag-gw-<token>".
# The token must close the local part.
_PLUS_RE = re.compile(r"\+(?:[^@]*-)?gw-(" + _BASE32_128_BITS + r")\Z", re.IGNORECASE)
# The canonical form starts with a label so that a MAC made here can never be taken for
# one made over some other JSON document with the same key.
_PURPOSE = "ghostwatch digest binding v1"
_LOOSE_ADDRESS_RE = re.compile(r"[^\s<>,;:\"()]+@[^\s<>,;:\"()]+")
_MAX_LOCAL_PART = 64  # RFC 5321 §4.5.3.1.1


class KeyFileError(GhostwatchError):
    """The digest key file is unsafe (permissions, owner, length) or cannot be used."""


def new_token() -> str:
    """A fresh token: 16 random bytes, base32 (RFC 4648 §6), lowercase, unpadded."""
    raw = base64.b32encode(secrets.token_bytes(_TOKEN_BYTES)).decode("ascii")
    return raw.rstrip("=").lower()


def subject_tag(token: str) -> str:
    """The Subject marker ``[gw:<token>]`` that :func:`find_token` looks for."""
    _check_token(token)
    return f"[gw:{token}]"


@dataclass(frozen=True, slots=True)
class Binding:
    """What a digest showed, as stored next to its row and covered by its MAC.

    ``items`` are ``(item number in the digest, outbox row id, body_hash of the body as
    shown)``. Their order does not matter: the MAC covers them sorted by item number, so
    rows read back from the database in any order still verify.
    """

    digest_id: str
    message_id: str
    issued_at: datetime
    expires_at: datetime
    items: tuple[tuple[int, int, str], ...]

    def __post_init__(self) -> None:
        for name in ("issued_at", "expires_at"):
            value: datetime = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"Binding.{name} must be timezone-aware")
        if self.expires_at <= self.issued_at:
            raise ValueError("Binding.expires_at must be after issued_at")
        numbers = [item[0] for item in self.items]
        row_ids = [item[1] for item in self.items]
        if len(set(numbers)) != len(numbers):
            raise ValueError("Binding.items: an item number appears twice")
        if len(set(row_ids)) != len(row_ids):
            raise ValueError("Binding.items: an outbox row appears twice")
        for number, row_id, digest in self.items:
            if number < 1 or row_id < 1:
                raise ValueError(f"Binding.items: ({number}, {row_id}) must be positive")
            if not _HASH_RE.fullmatch(digest):
                raise ValueError(f"Binding.items: {digest!r} is not a lowercase sha256 hex")


def body_hash(text: str) -> str:
    """SHA-256 hex of ``text`` after CRLF -> LF and Unicode NFC normalisation.

    Both steps make the hash depend on what the user read, not on how it was stored:
    SMTP uses CRLF (RFC 5321 §2.3.8) while templates and databases usually hold LF, and
    NFC folds the equivalent code point sequences an editor or a driver may produce.
    """
    normal = unicodedata.normalize("NFC", text.replace("\r\n", "\n"))
    # surrogatepass: a body with a stray surrogate still hashes instead of raising.
    return hashlib.sha256(normal.encode("utf-8", "surrogatepass")).hexdigest()


def _utc(value: datetime) -> str:
    # The MAC covers the instant, not the zone it was written in: the store hands back
    # UTC whatever zone the digest was issued in.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _canonical(token: str, binding: Binding) -> bytes:
    """JSON with sorted keys and no optional white space: every string is quoted and
    escaped, so no two different inputs serialise alike (RFC 8785 in spirit)."""
    document = {
        "purpose": _PURPOSE,
        "token": token,
        "digest_id": binding.digest_id,
        "message_id": binding.message_id,
        "issued_at": _utc(binding.issued_at),
        "expires_at": _utc(binding.expires_at),
        "items": [list(item) for item in sorted(binding.items)],
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")


def _check_key(key: bytes) -> None:
    if len(key) < KEY_BYTES:
        raise ValueError(f"the digest key must be at least {KEY_BYTES} bytes")


def _mac(key: bytes, token: str, binding: Binding) -> str:
    _check_key(key)
    return hmac.new(key, _canonical(token, binding), hashlib.sha256).hexdigest()


def seal(key: bytes, token: str, binding: Binding) -> str:
    """HMAC-SHA256 (RFC 2104) of ``token`` and every field of ``binding``, in hex."""
    _check_token(token)
    return _mac(key, token, binding)


def verify(key: bytes, token: str, binding: Binding, mac: str, now: datetime) -> str | None:
    """None when ``mac`` is :func:`seal`'s for ``token`` and ``binding`` and
    ``now < binding.expires_at``; otherwise a short reason for the log.

    ``token`` comes from the reply and may be anything: it is never parsed, only MACed
    and compared in constant time, so its shape leaks nothing about the stored one.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    expected = _mac(key, token, binding).encode("ascii")
    presented = mac.strip().lower().encode("utf-8", "surrogatepass")
    # Bytes, not str: compare_digest refuses non-ASCII str, and the stored MAC could be
    # damaged. Looked up as hmac.compare_digest so that the tests can watch the call.
    if not hmac.compare_digest(expected, presented):
        return "token does not match"
    if now >= binding.expires_at:
        return f"token expired at {_utc(binding.expires_at)}"
    return None


def reply_address(owner: str, token: str, *, plus: bool = True, alias: str | None = None) -> str:
    """The address the digest asks the user to reply to.

    With ``plus`` the token rides in a subaddress (RFC 5233): ``user@d`` becomes
    ``user+gw-<token>@d``, and an owner address that already has a tag keeps it,
    ``user+tag@d`` becoming ``user+tag-gw-<token>@d``, so that mail still lands where the
    user's own filters put it. ``alias`` is ignored then.

    Without ``plus`` (the provider has no subaddressing) the reply goes to ``alias``,
    which must be given, and the token travels in the Subject only.

    Raises ValueError for an owner address this cannot extend (no ``@``, quoted local
    part) or when the result would pass RFC 5321's 64-octet local-part limit; the
    caller should then fall back to ``plus=False``.
    """
    _check_token(token)
    if not plus:
        if alias is None or not alias.strip():
            raise ValueError("reply_address: alias is required when plus=False")
        return alias.strip()
    local, at, domain = owner.strip().rpartition("@")
    if not at or not local or not domain or any(c in local for c in ' "\\<>()[],;:@'):
        raise ValueError(f"reply_address: cannot add a subaddress to {owner!r}")
    suffix = f"-gw-{token}" if "+" in local else f"+gw-{token}"
    extended = local + suffix
    if len(extended.encode("utf-8")) > _MAX_LOCAL_PART:
        raise ValueError(
            f"reply_address: {extended!r} is longer than {_MAX_LOCAL_PART} octets; "
            "use plus=False with an alias"
        )
    return f"{extended}@{domain}"


def _decoded_subject(subject: str) -> str:
    if "=?" not in subject:
        return subject
    # An encoded subject (RFC 2047) hides the tag inside encoded-words.
    try:
        return str(make_header(decode_header(subject)))
    except (HeaderParseError, ValueError, LookupError):
        return subject


def _addresses(values: Sequence[str]) -> Iterator[str]:
    for raw in values:
        try:
            pairs = getaddresses([raw])
        except (IndexError, ValueError, TypeError):
            # A header malformed beyond the parser (it comes from the network): fall
            # back to every word that has an "@".
            yield from _LOOSE_ADDRESS_RE.findall(raw)
        else:
            yield from (address for _name, address in pairs)


def find_token(subject: str, to_addrs: Sequence[str]) -> str | None:
    """The token a reply carries, from its Subject tag or a plus-address in ``to_addrs``.

    ``to_addrs`` are raw To/Cc values or bare addresses. None when there is no token, or
    when more than one different token appears (Subject and address disagree, or two
    tags): the caller rejects such a reply instead of guessing. Tokens are returned in
    lowercase, since servers and clients may change the case of either place.
    """
    found = {m.lower() for m in _SUBJECT_TAG_RE.findall(_decoded_subject(subject))}
    for address in _addresses(to_addrs):
        local, at, _domain = address.rpartition("@")
        if not at:
            continue
        match = _PLUS_RE.search(local)
        if match is not None:
            found.add(match.group(1).lower())
    return found.pop() if len(found) == 1 else None


def _check_token(token: str) -> None:
    if not _TOKEN_RE.fullmatch(token):
        raise ValueError(f"{token!r} is not a digest token")


def _read_key(path: Path) -> bytes:
    """Read and check an existing key file; FileNotFoundError passes through."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # fstat on the open file: what is checked is what is read.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path}: the digest key is not a regular file")
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"{path}: the digest key must be private to its owner (mode is "
                f"{stat.filemode(info.st_mode)}). Run: chmod 600 {path}"
            )
        if info.st_uid != os.geteuid():
            raise KeyFileError(f"{path}: the digest key belongs to another user")
        data = b""
        while len(data) <= KEY_BYTES:
            chunk = os.read(fd, KEY_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if len(data) != KEY_BYTES:
        raise KeyFileError(
            f"{path}: the digest key must be exactly {KEY_BYTES} bytes; it is damaged. "
            "Remove it to make a new one (pending digests then need a new approval)"
        )
    return data


def _make_private_dirs(directory: Path) -> None:
    missing: list[Path] = []
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another process: not ours to chmod
        # mkdir's mode is filtered by the umask; set it outright.
        path.chmod(0o700)


def _create_key(path: Path) -> None:
    _make_private_dirs(path.parent)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            key = secrets.token_bytes(KEY_BYTES)
            while key:
                key = key[os.write(fd, key) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        # link() never replaces: when two processes race, both end up with the key that
        # was linked first, and no reader ever sees a half-written file.
        with suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)  # the new name survives a crash
    finally:
        os.close(dir_fd)


def load_or_create_key(path: Path) -> bytes:
    """The digest MAC key: 32 bytes read from ``path``, created there (mode 0600, new
    parent directories 0700) when missing.

    Raises :class:`KeyFileError` when the file is accessible by group or others, owned
    by another user, not a regular file, not exactly 32 bytes, or cannot be read or
    created. Losing the key only means pending digests no longer verify.
    """
    try:
        try:
            return _read_key(path)
        except FileNotFoundError:
            _create_key(path)
        return _read_key(path)
    except KeyFileError:
        raise
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot use the digest key: {exc.strerror or exc}") from exc
