"""RFC 8601 Authentication-Results: only the topmost field of the trusted server counts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostwatch.authresults import AuthVerdict, topmost_verdict

MX = "mx.example.test"
ALL = ("dkim", "spf", "dmarc")
GOOD = (
    f"{MX}; dkim=pass header.d=example.test; spf=pass smtp.mailfrom=owner@example.test;"
    " dmarc=pass header.from=example.test"
)


def test_all_methods_in_one_field_are_read() -> None:
    verdict = topmost_verdict([GOOD], MX)
    assert verdict == AuthVerdict(
        trusted_header_found=True,
        dkim="pass",
        spf="pass",
        dmarc="pass",
        dkim_domains=("example.test",),
        spf_domains=("example.test",),
        dmarc_domains=("example.test",),
    )
    assert verdict.passes(ALL, "example.test") is None


def test_a_pass_below_the_topmost_trusted_fail_is_ignored() -> None:
    # The lower field could have come with the message; the server's own is on top.
    forged = f"{MX}; dkim=pass header.d=example.test"
    real = f"{MX}; dkim=fail (bad signature) header.d=example.test"
    verdict = topmost_verdict([real, forged], MX)
    assert verdict.dkim == "fail"
    assert verdict.dkim_domains == ()
    assert verdict.passes(["dkim"], "example.test") == "dkim=fail"


def test_the_topmost_trusted_field_wins_over_lower_ones_even_without_the_method() -> None:
    verdict = topmost_verdict([f"{MX}; spf=pass smtp.mailfrom=example.test", GOOD], MX)
    assert verdict.dkim is None
    assert verdict.passes(["dkim"], "example.test") == "dkim not reported"


def test_a_pass_from_another_authserv_id_is_ignored() -> None:
    other = "mx.attacker.test; dkim=pass header.d=example.test; spf=pass; dmarc=pass"
    verdict = topmost_verdict([other, f"{MX}; dkim=fail header.d=example.test"], MX)
    assert verdict.dkim == "fail"
    assert verdict.spf is None
    alone = topmost_verdict([other], MX)
    assert alone.trusted_header_found is False
    assert alone.dkim is None


def test_fields_of_other_servers_above_the_trusted_one_are_skipped() -> None:
    upstream = "relay.example.net; dkim=fail header.d=example.test"
    verdict = topmost_verdict([upstream, GOOD, f"{MX}; dkim=fail"], MX)
    assert verdict.passes(ALL, "example.test") is None


def test_no_trusted_field_means_not_found_and_no_pass() -> None:
    verdict = topmost_verdict([], MX)
    assert verdict.trusted_header_found is False
    reason = verdict.passes(["dkim"], "example.test")
    assert reason is not None
    assert "no Authentication-Results" in reason


def test_comments_with_semicolons_and_folding_white_space_are_skipped() -> None:
    raw = (
        f" {MX} (Postfix; authenticated\r\n\t(nested (twice) \\) escaped));\r\n"
        "\tdkim=pass (2048-bit key; unprotected) header.d=example.test\r\n"
        "\t  header.s=sel (selector; 2026);\r\n"
        "  spf=pass (mx.example.test: domain of owner@example.test designates\r\n"
        "\t 192.0.2.1 as permitted sender) smtp.mailfrom=owner@example.test ;\r\n"
        "  dmarc = pass (p=REJECT sp=REJECT dis=NONE) header . from = example.test"
    )
    verdict = topmost_verdict([raw], MX)
    assert verdict.passes(ALL, "example.test") is None
    assert verdict.dkim_domains == ("example.test",)
    assert verdict.dmarc_domains == ("example.test",)


def test_authserv_id_matches_case_insensitively_and_quoted() -> None:
    assert topmost_verdict([GOOD], "MX.Example.TEST").dkim == "pass"
    quoted = GOOD.replace(MX, f'"{MX}"', 1)
    assert topmost_verdict([quoted], MX).dkim == "pass"


def test_an_authserv_id_that_only_starts_like_the_trusted_one_is_not_it() -> None:
    verdict = topmost_verdict([GOOD.replace(MX, MX + ".attacker.test", 1)], MX)
    assert verdict.trusted_header_found is False


def test_version_1_after_the_authserv_id_is_accepted() -> None:
    verdict = topmost_verdict([GOOD.replace(MX, f"{MX} 1", 1)], MX)
    assert verdict.passes(ALL, "example.test") is None


def test_an_unknown_version_reports_nothing_and_still_hides_lower_fields() -> None:
    verdict = topmost_verdict([GOOD.replace(MX, f"{MX} 2", 1), GOOD], MX)
    assert verdict.trusted_header_found is True
    assert (verdict.dkim, verdict.spf, verdict.dmarc) == (None, None, None)


def test_none_means_found_but_nothing_passed() -> None:
    verdict = topmost_verdict([f"{MX}; none", GOOD], MX)
    assert verdict.trusted_header_found is True
    assert verdict.passes(["dmarc"], "example.test") == "dmarc not reported"


def test_the_field_name_may_be_included() -> None:
    assert topmost_verdict([f"Authentication-Results: {GOOD}"], MX).dkim == "pass"


def test_gmail_style_header_i_gives_the_dkim_domain_and_base64_does_not_derail() -> None:
    raw = (
        "mx.google.com;\r\n       dkim=pass header.i=@example.test header.s=20230601"
        " header.b=Xy7/Ab+c=;\r\n       spf=pass (google.com: domain of x@example.test"
        " designates 192.0.2.1 as permitted sender) smtp.mailfrom=x@example.test;\r\n"
        "       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=example.test"
    )
    verdict = topmost_verdict([raw], "mx.google.com")
    assert verdict.dkim_domains == ("example.test",)
    assert verdict.passes(ALL, "example.test") is None


def test_microsoft_style_without_spaces_after_semicolons() -> None:
    raw = (
        f"spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=example.test; {MX};"
        "dkim=pass (signature was verified) header.d=example.test;dmarc=pass action=none"
        " header.from=example.test;compauth=pass reason=100"
    )
    # Non-conforming: no authserv-id first. It must not be mistaken for the trusted one.
    assert topmost_verdict([raw], MX).trusted_header_found is False
    conforming = f"{MX}; " + raw.split(f"{MX};", 1)[1]
    assert topmost_verdict([conforming], MX).passes(["dkim", "dmarc"], "example.test") is None


def test_result_and_method_names_are_case_insensitive() -> None:
    verdict = topmost_verdict([f"{MX}; DKIM=PASS header.d=Example.TEST"], MX)
    assert verdict.passes(["dkim"], "example.test") is None


def test_any_passing_signature_counts_for_dkim_but_only_with_its_domain() -> None:
    raw = f"{MX}; dkim=fail header.d=example.test; dkim=pass header.d=mailer.example.net"
    verdict = topmost_verdict([raw], MX)
    assert verdict.dkim == "pass"
    assert verdict.dkim_domains == ("mailer.example.net",)
    assert verdict.passes(["dkim"], "example.test") == (
        "dkim passed for mailer.example.net, not example.test"
    )
    assert verdict.passes(["dkim"], "mailer.example.net") is None


@pytest.mark.parametrize(
    ("signer", "from_domain", "ok"),
    [
        ("example.test", "example.test", True),
        ("example.test", "mail.example.test", True),
        ("mail.example.test", "example.test", False),
        ("ample.test", "example.test", False),  # a suffix, not a parent
        ("other.test", "example.test", False),
        ("EXAMPLE.TEST.", "example.test", True),
    ],
)
def test_dkim_pass_counts_for_its_domain_or_a_parent(
    signer: str, from_domain: str, ok: bool
) -> None:
    verdict = topmost_verdict([f"{MX}; dkim=pass header.d={signer}"], MX)
    assert (verdict.passes(["dkim"], from_domain) is None) is ok


def test_dkim_pass_without_a_domain_does_not_count() -> None:
    verdict = topmost_verdict([f"{MX}; dkim=pass"], MX)
    assert verdict.passes(["dkim"], "example.test") == "dkim passed for no domain, not example.test"


def test_spf_pass_needs_an_aligned_mailfrom() -> None:
    no_mailfrom = topmost_verdict([f"{MX}; spf=pass smtp.helo=mx.example.test"], MX)
    assert no_mailfrom.passes(["spf"], "example.test") is not None
    other = topmost_verdict([f"{MX}; spf=pass smtp.mailfrom=bounce@esp.example.net"], MX)
    assert (
        other.passes(["spf"], "example.test") == "spf passed for esp.example.net, not example.test"
    )


def test_conflicting_spf_results_do_not_pass() -> None:
    raw = f"{MX}; spf=pass smtp.mailfrom=example.test; spf=softfail smtp.mailfrom=example.test"
    assert topmost_verdict([raw], MX).spf == "softfail"


def test_dmarc_pass_for_another_from_domain_does_not_count() -> None:
    verdict = topmost_verdict([f"{MX}; dmarc=pass header.from=attacker.test"], MX)
    assert verdict.passes(["dmarc"], "example.test") == (
        "dmarc passed for attacker.test, not example.test"
    )
    bare = topmost_verdict([f"{MX}; dmarc=pass"], MX)
    assert bare.passes(["dmarc"], "example.test") is None


def test_passes_reports_the_first_missing_method() -> None:
    verdict = topmost_verdict([f"{MX}; dkim=pass header.d=example.test; spf=neutral"], MX)
    assert verdict.passes(["dkim"], "example.test") is None
    assert verdict.passes(["dkim", "spf"], "example.test") == "spf=neutral"
    assert verdict.passes(["dkim", "dmarc"], "example.test") == "dmarc not reported"


def test_passes_with_nothing_required_passes_and_unknown_methods_raise() -> None:
    assert topmost_verdict([], MX).passes([], "example.test") is None
    with pytest.raises(ValueError, match="arc"):
        topmost_verdict([GOOD], MX).passes(["arc"], "example.test")


def test_passes_without_a_from_domain_gives_a_reason() -> None:
    assert topmost_verdict([GOOD], MX).passes(["dkim"], "") == "no From domain to check against"


def test_an_idna_from_domain_matches_its_a_label() -> None:
    verdict = topmost_verdict([f"{MX}; dkim=pass header.d=xn--mller-kva.test"], MX)
    assert verdict.passes(["dkim"], "müller.test") is None


@pytest.mark.parametrize(
    "raw",
    [
        "",
        ";",
        f"{MX}",
        f"{MX};",
        f"{MX}; dkim",
        f"{MX}; dkim=",
        f"{MX}; =pass",
        f"{MX}; dkim/=pass",
        f"{MX}; dkim=pass header.d",
        f"{MX}; dkim=pass header.d=",
        f"{MX}; dkim=pass (unclosed comment header.d=example.test",
        f'{MX}; dkim=pass header.d="unclosed',
        f"{MX} dkim=pass header.d=example.test",  # ";" missing
        f"{MX} 1 2; dkim=pass header.d=example.test",
        '"',
        "(((",
        "\\",
        f"{MX}; dkim=pass header.d=@",
        f"{MX}; dkim=pass header.d=.\udcff",
    ],
)
def test_malformed_fields_never_raise_and_never_pass(raw: str) -> None:
    assert topmost_verdict([raw], MX).passes(["dkim"], "example.test") is not None
    if raw.startswith(MX):
        # Still the topmost trusted field: a good field below it must not stand in.
        assert topmost_verdict([raw, GOOD], MX).passes(["dkim"], "example.test") is not None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from(f'{MX} ;=/.@"()\\\r\n\tdkimpassheader.d1x'), max_size=80),
        max_size=4,
    )
)
def test_any_text_is_parsed_without_raising(headers: list[str]) -> None:
    verdict = topmost_verdict(headers, MX)
    verdict.passes(ALL, "example.test")


def test_an_empty_trusted_authserv_id_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="authserv_id"):
        topmost_verdict([GOOD], " ")
