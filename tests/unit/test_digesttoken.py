"""Digest tokens: the MAC binding, expiry, finding the token in a reply, the key file."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from ghostwatch.digesttoken import (
    KEY_BYTES,
    Binding,
    KeyFileError,
    body_hash,
    find_token,
    load_or_create_key,
    new_token,
    reply_address,
    seal,
    subject_tag,
    verify,
)
from ghostwatch.errors import GhostwatchError

KEY = bytes(range(32))
TOKEN = "abcdefghijklmnopqrstuvwxyz"  # 26 base32 characters, fixed for readable cases
OTHER = "zyxwvutsrqponmlkjihgfedcba"
ISSUED = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
EXPIRES = ISSUED + timedelta(days=3)
BINDING = Binding(
    digest_id="dg-42",
    message_id="<digest.42@ghostwatch.example>",
    issued_at=ISSUED,
    expires_at=EXPIRES,
    items=(
        (1, 101, body_hash("Hi Bob,\nany news on the invoice?\n")),
        (2, 102, body_hash("Dear Carol,\nfriendly reminder.\n")),
    ),
)
BEFORE_EXPIRY = EXPIRES - timedelta(hours=1)


def test_new_token_is_26_lowercase_base32_chars_of_16_random_bytes() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert len(token) == 26
        assert set(token) <= set("abcdefghijklmnopqrstuvwxyz234567")
        assert len(base64.b32decode(token.upper() + "======")) == 16


def test_a_sealed_binding_verifies_before_expiry() -> None:
    mac = seal(KEY, TOKEN, BINDING)
    assert len(mac) == 64
    assert verify(KEY, TOKEN, BINDING, mac, BEFORE_EXPIRY) is None


def _with_item(index: int, position: int, value: object) -> Binding:
    items = [list(item) for item in BINDING.items]
    items[index][position] = value
    return dataclasses.replace(BINDING, items=tuple(tuple(i) for i in items))  # type: ignore[misc]


CHANGED = [
    pytest.param(dict(message_id="<other@ghostwatch.example>"), id="message_id"),
    pytest.param(dict(digest_id="dg-43"), id="digest_id"),
    pytest.param(dict(expires_at=EXPIRES + timedelta(days=30)), id="expires_at"),
    pytest.param(dict(issued_at=ISSUED - timedelta(seconds=1)), id="issued_at"),
    pytest.param(dict(items=BINDING.items[:1]), id="an-item-dropped"),
]


@pytest.mark.parametrize("change", CHANGED)
def test_changing_any_binding_field_breaks_the_mac(change: dict[str, object]) -> None:
    mac = seal(KEY, TOKEN, BINDING)
    changed = dataclasses.replace(BINDING, **change)  # type: ignore[arg-type]
    assert verify(KEY, TOKEN, changed, mac, BEFORE_EXPIRY) == "token does not match"


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(_with_item(0, 1, 999), id="row-id"),
        pytest.param(_with_item(1, 2, body_hash("Dear Carol,\nPAY NOW.\n")), id="body-hash"),
        pytest.param(_with_item(0, 0, 3), id="item-number"),
    ],
)
def test_changing_an_item_breaks_the_mac(changed: Binding) -> None:
    mac = seal(KEY, TOKEN, BINDING)
    assert changed != BINDING
    assert verify(KEY, TOKEN, changed, mac, BEFORE_EXPIRY) == "token does not match"


def test_another_token_or_key_does_not_verify() -> None:
    mac = seal(KEY, TOKEN, BINDING)
    assert verify(KEY, OTHER, BINDING, mac, BEFORE_EXPIRY) == "token does not match"
    assert verify(bytes(32), TOKEN, BINDING, mac, BEFORE_EXPIRY) == "token does not match"


def test_a_token_of_any_shape_from_a_reply_is_rejected_without_raising() -> None:
    mac = seal(KEY, TOKEN, BINDING)
    for presented in ("", TOKEN.upper(), TOKEN + "a", "é" * 26, "\udcff"):
        assert verify(KEY, presented, BINDING, mac, BEFORE_EXPIRY) == "token does not match"


def test_a_damaged_stored_mac_is_a_mismatch_not_a_crash() -> None:
    assert verify(KEY, TOKEN, BINDING, "ü" * 64, BEFORE_EXPIRY) == "token does not match"
    assert verify(KEY, TOKEN, BINDING, "", BEFORE_EXPIRY) == "token does not match"


def test_item_order_does_not_matter_since_items_are_sealed_sorted() -> None:
    mac = seal(KEY, TOKEN, BINDING)
    reordered = dataclasses.replace(BINDING, items=BINDING.items[::-1])
    assert verify(KEY, TOKEN, reordered, mac, BEFORE_EXPIRY) is None


def test_the_same_instants_in_another_zone_still_verify() -> None:
    # The store hands datetimes back in UTC; the MAC must not depend on the zone.
    rome = timezone(timedelta(hours=1))
    mac = seal(KEY, TOKEN, BINDING)
    moved = dataclasses.replace(
        BINDING, issued_at=ISSUED.astimezone(rome), expires_at=EXPIRES.astimezone(rome)
    )
    assert verify(KEY, TOKEN, moved, mac, BEFORE_EXPIRY) is None


def test_a_token_is_valid_while_now_is_before_expires_at_and_expired_at_it() -> None:
    mac = seal(KEY, TOKEN, BINDING)
    assert verify(KEY, TOKEN, BINDING, mac, EXPIRES - timedelta(microseconds=1)) is None
    reason = verify(KEY, TOKEN, BINDING, mac, EXPIRES)
    assert reason == "token expired at 2026-11-23T08:00:00.000000+00:00"
    assert verify(KEY, TOKEN, BINDING, mac, EXPIRES + timedelta(days=1)) == reason


def test_a_bad_mac_is_reported_as_a_mismatch_even_when_also_expired() -> None:
    mac = seal(KEY, TOKEN, BINDING)
    assert verify(KEY, OTHER, BINDING, mac, EXPIRES) == "token does not match"


def test_verify_compares_macs_with_hmac_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, object]] = []

    def always_equal(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return True

    monkeypatch.setattr(hmac, "compare_digest", always_equal)
    # A wrong MAC is accepted only because the patched compare says "equal": the
    # decision comes from compare_digest, not from ==.
    assert verify(KEY, TOKEN, BINDING, "0" * 64, BEFORE_EXPIRY) is None
    assert len(calls) == 1
    expected, presented = calls[0]
    assert expected == seal(KEY, TOKEN, BINDING).encode("ascii")
    assert presented == b"0" * 64


def test_verify_refuses_a_naive_now() -> None:
    mac = seal(KEY, TOKEN, BINDING)
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(KEY, TOKEN, BINDING, mac, datetime(2026, 11, 21, 8, 0))


def test_seal_refuses_a_malformed_token_and_a_short_key() -> None:
    with pytest.raises(ValueError, match="not a digest token"):
        seal(KEY, "short", BINDING)
    with pytest.raises(ValueError, match="32 bytes"):
        seal(b"k" * 16, TOKEN, BINDING)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(issued_at=datetime(2026, 11, 20, 8, 0)), "timezone-aware"),
        (dict(expires_at=ISSUED), "after issued_at"),
        (dict(items=((1, 101, "0" * 64), (1, 102, "1" * 64))), "item number appears twice"),
        (dict(items=((1, 101, "0" * 64), (2, 101, "1" * 64))), "outbox row appears twice"),
        (dict(items=((1, 101, "A" * 64),)), "sha256"),
        (dict(items=((0, 101, "0" * 64),)), "positive"),
    ],
)
def test_binding_refuses_inconsistent_fields(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(BINDING, **change)  # type: ignore[arg-type]


def test_body_hash_ignores_line_endings_and_unicode_normal_form() -> None:
    lf = body_hash("Grüße\nBob\n")
    assert body_hash("Grüße\r\nBob\r\n") == lf
    assert body_hash("Gru\u0308ße\nBob\n") == lf  # NFD ü
    assert body_hash("Grüße\nBob!\n") != lf
    assert body_hash("") == hashlib.sha256(b"").hexdigest()


def test_reply_address_adds_a_plus_tag() -> None:
    assert reply_address("owner@example.test", TOKEN) == f"owner+gw-{TOKEN}@example.test"


def test_reply_address_extends_an_existing_plus_tag_instead_of_replacing_it() -> None:
    got = reply_address("owner+clients@example.test", TOKEN)
    assert got == f"owner+clients-gw-{TOKEN}@example.test"


def test_reply_address_without_plus_is_the_alias_and_needs_one() -> None:
    got = reply_address("owner@example.test", TOKEN, plus=False, alias="approve@example.test")
    assert got == "approve@example.test"
    with pytest.raises(ValueError, match="alias is required"):
        reply_address("owner@example.test", TOKEN, plus=False)


@pytest.mark.parametrize(
    "owner", ["no-at-sign", "@example.test", '"quoted local"@example.test', "x" * 40 + "@e.test"]
)
def test_reply_address_refuses_what_it_cannot_extend(owner: str) -> None:
    with pytest.raises(ValueError, match="reply_address"):
        reply_address(owner, TOKEN)


def test_subject_tag_format() -> None:
    assert subject_tag(TOKEN) == f"[gw:{TOKEN}]"


@pytest.mark.parametrize(
    "subject",
    [
        f"ghostwatch digest {subject_tag(TOKEN)}",
        f"Re: ghostwatch digest {subject_tag(TOKEN)}",
        f"RE: Re: AW: R: Re[2]: ghostwatch digest {subject_tag(TOKEN)}",
        f"{subject_tag(TOKEN)} digest",
        f"Re: [gw:{TOKEN.upper()}]",
        "=?utf-8?q?Re=3A_R=C3=A9sum=C3=A9_[gw:" + TOKEN + "]?=",
    ],
)
def test_find_token_reads_the_subject_tag_after_any_reply_prefixes(subject: str) -> None:
    assert find_token(subject, ["owner@example.test"]) == TOKEN


@pytest.mark.parametrize(
    "to",
    [
        [f"owner+gw-{TOKEN}@example.test"],
        [f'"Owner (ghostwatch)" <owner+gw-{TOKEN}@example.test>'],
        [f"carol@client.test, Owner <owner+gw-{TOKEN}@example.test>"],
        ["bob@client.test", f"owner+clients-gw-{TOKEN}@example.test"],
        [f"OWNER+GW-{TOKEN.upper()}@EXAMPLE.TEST"],
    ],
)
def test_find_token_reads_a_plus_address(to: list[str]) -> None:
    assert find_token("Re: ghostwatch digest", to) == TOKEN


def test_find_token_round_trips_reply_address() -> None:
    token = new_token()
    for owner in ("owner@example.test", "owner+tag@example.test"):
        assert find_token("Re: digest", [reply_address(owner, token)]) == token


def test_find_token_accepts_subject_and_address_when_they_agree() -> None:
    to = [f"owner+gw-{TOKEN}@example.test"]
    assert find_token(f"Re: {subject_tag(TOKEN)}", to) == TOKEN


@pytest.mark.parametrize(
    ("subject", "to"),
    [
        pytest.param(
            f"Re: {subject_tag(TOKEN)}", [f"owner+gw-{OTHER}@e.test"], id="subject-vs-address"
        ),
        pytest.param(f"Re: {subject_tag(TOKEN)} {subject_tag(OTHER)}", [], id="two-subject-tags"),
        pytest.param(
            "Re: digest", [f"o+gw-{TOKEN}@e.test", f"o+gw-{OTHER}@e.test"], id="two-addresses"
        ),
    ],
)
def test_find_token_gives_none_when_two_different_tokens_appear(
    subject: str, to: list[str]
) -> None:
    assert find_token(subject, to) is None


@pytest.mark.parametrize(
    ("subject", "to"),
    [
        pytest.param("Re: ghostwatch digest", ["owner@example.test"], id="no-token"),
        pytest.param(f"Re: [gw:{TOKEN[:-1]}]", [], id="tag-too-short"),
        pytest.param(f"Re: [gw:{TOKEN}0]", [], id="tag-not-base32"),
        pytest.param(
            "Re: x", [f"owner+gw-{TOKEN}x@example.test"], id="token-not-at-end-of-local-part"
        ),
        pytest.param("Re: x", [f"owner-gw-{TOKEN}@example.test"], id="no-plus"),
        pytest.param("Re: x", ["<<<@@>>>", '"unclosed', ""], id="garbage-addresses"),
    ],
)
def test_find_token_gives_none_without_a_well_formed_token(subject: str, to: list[str]) -> None:
    assert find_token(subject, to) is None


# --- the key file ------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_key_is_created_0600_in_new_0700_directories(tmp_path: Path) -> None:
    path = tmp_path / "state" / "keys" / "digest.key"
    key = load_or_create_key(path)
    assert len(key) == KEY_BYTES
    assert path.read_bytes() == key
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert _mode(path.parent.parent) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["digest.key"]  # no temp file left


def test_the_key_is_read_back_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "digest.key"
    assert load_or_create_key(path) == load_or_create_key(path)


def test_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o277)
    try:
        path = tmp_path / "state" / "digest.key"
        load_or_create_key(path)
    finally:
        os.umask(old)
    assert _mode(path.parent) == 0o700
    assert _mode(path) == 0o600


def test_an_existing_parent_directory_is_left_as_it_is(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    load_or_create_key(tmp_path / "digest.key")
    assert _mode(tmp_path) == 0o755


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o601])
def test_a_key_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "digest.key"
    path.write_bytes(KEY)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="chmod 600") as info:
        load_or_create_key(path)
    assert isinstance(info.value, GhostwatchError)
    assert path.read_bytes() == KEY  # refused, not "repaired" or replaced


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_a_key_file_of_the_wrong_length_is_refused(tmp_path: Path, size: int) -> None:
    path = tmp_path / "digest.key"
    path.write_bytes(b"k" * size)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="exactly 32 bytes"):
        load_or_create_key(path)


def test_a_directory_in_place_of_the_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "digest.key"
    path.mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_or_create_key(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_key_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "digest.key"
    path.write_bytes(KEY)
    path.chmod(0o600)
    os.chown(path, 65534, 65534)
    with pytest.raises(KeyFileError, match="another user"):
        load_or_create_key(path)
