"""What the user's own mail server says about a message: RFC 8601 Authentication-Results.

A reply that approves drafts is only acted on when the receiving server vouches for its
sender. Anyone can write an Authentication-Results field into a message, so only one
field is believed: the topmost one whose authserv-id (RFC 8601 §2.5) is the configured
one. The server adds its field above everything the message arrived with (RFC 5322
§3.6 trace order), and a server that honours §5 removes look-alikes it received; one
that does not would leave a forged field *below* its own, which is why every lower field
with the trusted authserv-id is ignored too (§7, forged header fields).

The parser follows the grammar of RFC 8601 §2.2: comments (RFC 5322 §3.2.2, nested and
with quoted-pairs) and folding white space are dropped, quoted strings are unquoted,
``authserv-id [version]; method[/version]=result [reason=...] [ptype.property=value]...``
or ``authserv-id; none``. It is total: malformed input never raises, a part it cannot
read yields no result, and no result never passes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

__all__ = ["METHODS", "AuthVerdict", "topmost_verdict"]

#: The methods :meth:`AuthVerdict.passes` can require.
METHODS = ("dkim", "spf", "dmarc")

_FIELD_NAME = "authentication-results:"
_SPECIALS = frozenset(";=/")
_WHITE = frozenset(" \t\r\n")


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "word", "quoted" or one of _SPECIALS
    text: str
    glued: bool  # no white space or comment before it


@dataclass(frozen=True, slots=True)
class _Result:
    method: str
    result: str
    props: tuple[tuple[str, str], ...]

    def prop(self, name: str) -> str | None:
        return next((value for key, value in self.props if key == name), None)


@dataclass(frozen=True, slots=True)
class AuthVerdict:
    """The results of the trusted Authentication-Results field.

    ``dkim`` is "pass" when any signature passed (a message may carry several, RFC 6376
    §4), otherwise the first result reported; ``spf`` and ``dmarc`` are "pass" only when
    every result for the method is. None means the method was not reported. The
    ``*_domains`` hold, lowercased, the domains that passed: ``header.d`` (or the domain
    of ``header.i``) for DKIM, ``smtp.mailfrom`` for SPF, ``header.from`` for DMARC
    (RFC 8601 §2.7).
    """

    trusted_header_found: bool
    dkim: str | None
    spf: str | None
    dmarc: str | None
    dkim_domains: tuple[str, ...]
    spf_domains: tuple[str, ...] = ()
    dmarc_domains: tuple[str, ...] = ()

    def passes(self, require: Collection[str], from_domain: str) -> str | None:
        """None when every method in ``require`` passed for ``from_domain``, else why not.

        A DKIM or SPF pass counts only for its own domain or a parent of the From
        domain (``d=example.com`` covers ``mail.example.com``); SPF needs
        ``smtp.mailfrom`` for that reason. A DMARC pass that names another
        ``header.from`` does not count. An empty ``require`` always passes.
        """
        wanted = {method.lower() for method in require}
        unknown = wanted.difference(METHODS)
        if unknown:
            raise ValueError(f"unknown authentication methods: {', '.join(sorted(unknown))}")
        if not wanted:
            return None
        if not self.trusted_header_found:
            return "no Authentication-Results field from the trusted server"
        domain = _domain(from_domain)
        if not domain:
            return "no From domain to check against"
        for method in METHODS:
            if method not in wanted:
                continue
            result: str | None = getattr(self, method)
            domains: tuple[str, ...] = getattr(self, f"{method}_domains")
            if result is None:
                return f"{method} not reported"
            if result != "pass":
                return f"{method}={result}"
            if method == "dmarc":
                if domains and domain not in domains:
                    return f"dmarc passed for {', '.join(domains)}, not {domain}"
            elif not any(_aligned(d, domain) for d in domains):
                return f"{method} passed for {', '.join(domains) or 'no domain'}, not {domain}"
        return None


_NOT_FOUND = AuthVerdict(
    trusted_header_found=False, dkim=None, spf=None, dmarc=None, dkim_domains=()
)


def topmost_verdict(headers: Sequence[str], authserv_id: str) -> AuthVerdict:
    """The verdict of the topmost field in ``headers`` whose authserv-id is
    ``authserv_id`` (case-insensitive); fields of other servers and every field below
    it are ignored. ``headers`` are the field values in message order, topmost first.
    """
    wanted = _normal_id(authserv_id)
    if not wanted:
        raise ValueError("authserv_id must not be empty")
    for raw in headers:
        parsed = _parse(raw)
        if parsed is not None and parsed[0] == wanted:
            return _verdict(parsed[1])
    return _NOT_FOUND


def _verdict(results: Sequence[_Result]) -> AuthVerdict:
    def of(method: str) -> list[_Result]:
        return [r for r in results if r.method == method]

    dkim = of("dkim")
    dkim_pass = [r for r in dkim if r.result == "pass"]
    dkim_result = "pass" if dkim_pass else (dkim[0].result if dkim else None)
    dkim_domains = [_signing_domain(r) for r in dkim_pass]
    spf_result, spf_domains = _all_or_nothing(of("spf"), "smtp.mailfrom")
    dmarc_result, dmarc_domains = _all_or_nothing(of("dmarc"), "header.from")
    return AuthVerdict(
        trusted_header_found=True,
        dkim=dkim_result,
        spf=spf_result,
        dmarc=dmarc_result,
        dkim_domains=_unique(dkim_domains),
        spf_domains=spf_domains,
        dmarc_domains=dmarc_domains,
    )


def _all_or_nothing(results: Sequence[_Result], prop: str) -> tuple[str | None, tuple[str, ...]]:
    # SPF and DMARC give one answer per message; two that disagree mean something is
    # off, and the doubtful answer wins.
    if not results:
        return None, ()
    failed = next((r.result for r in results if r.result != "pass"), None)
    if failed is not None:
        return failed, ()
    return "pass", _unique(_domain(r.prop(prop) or "") for r in results)


def _signing_domain(result: _Result) -> str:
    # Gmail reports only header.i=@example.com; its domain is d= or below it (RFC 6376
    # §3.5), so it is never broader than the signer.
    return _domain(result.prop("header.d") or result.prop("header.i") or "")


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def _aligned(signer: str, from_domain: str) -> bool:
    return from_domain == signer or from_domain.endswith("." + signer)


def _domain(value: str) -> str:
    """The domain of an address or domain, lowercased, in A-labels (RFC 5890)."""
    domain = value.strip().strip("<>").rpartition("@")[2].strip().rstrip(".").lower()
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def _normal_id(value: str) -> str:
    return value.strip().rstrip(".").lower()


def _lex(value: str) -> list[_Token]:
    """Words, quoted strings and ``; = /``, without comments and white space."""
    tokens: list[_Token] = []
    i, n = 0, len(value)
    glued = True
    while i < n:
        c = value[i]
        if c in _WHITE:
            glued = False
            i += 1
        elif c == "(":
            # A comment, possibly nested; an unclosed one runs to the end.
            depth = 0
            while i < n:
                c = value[i]
                if c == "\\":
                    i += 1
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
            glued = False
        elif c == '"':
            i += 1
            chars: list[str] = []
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(value[i])
                i += 1
            i += 1  # the closing quote, if any
            tokens.append(_Token("quoted", "".join(chars), glued))
            glued = True
        elif c in _SPECIALS:
            tokens.append(_Token(c, c, glued))
            glued = True
            i += 1
        else:
            start = i
            while i < n and value[i] not in _WHITE and value[i] not in _SPECIALS:
                if value[i] in '("':
                    break
                i += 1
            tokens.append(_Token("word", value[start:i], glued))
            glued = True
    return tokens


def _split(tokens: list[_Token]) -> list[list[_Token]]:
    segments: list[list[_Token]] = [[]]
    for token in tokens:
        if token.kind == ";":
            segments.append([])
        else:
            segments[-1].append(token)
    return segments


def _parse(raw: str) -> tuple[str, list[_Result]] | None:
    """``(authserv-id, results)``, or None when no authserv-id can be read."""
    value = raw
    if value.lstrip().lower().startswith(_FIELD_NAME):
        value = value.lstrip()[len(_FIELD_NAME) :]
    head, *rest = _split(_lex(value))
    if not head or head[0].kind not in ("word", "quoted"):
        return None
    authserv_id = _normal_id(head[0].text)
    if not authserv_id:
        return None
    if len(head) == 1:
        version = "1"
    elif len(head) == 2 and head[1].kind == "word" and head[1].text.isdigit():
        version = head[1].text
    else:
        # Not "authserv-id [version]" (a missing ";", say): a field that still counts
        # as the trusted one, so nothing below it is believed, but reports nothing.
        return authserv_id, []
    if int(version) != 1:
        return authserv_id, []  # a later version of RFC 8601 this parser does not know
    results: list[_Result] = []
    for segment in rest:
        result = _resinfo(segment)
        if result is not None:
            results.append(result)
    return authserv_id, results


def _resinfo(segment: list[_Token]) -> _Result | None:
    """One ``method[/version]=result [reason=value] [ptype.property=value]...``."""
    if len(segment) < 3 or segment[0].kind != "word":
        return None  # empty, "none", or unreadable
    method = segment[0].text.lower()
    i = 1
    if segment[i].kind == "/":
        i += 2  # the method version
    if i + 1 >= len(segment) or segment[i].kind != "=" or segment[i + 1].kind != "word":
        return None
    result = segment[i + 1].text.lower()
    props: list[tuple[str, str]] = []
    i += 2
    n = len(segment)
    while i < n:
        key: list[str] = []
        while i < n and segment[i].kind == "word":
            key.append(segment[i].text)  # "header . d" (CFWS around the dot) is legal
            i += 1
        if not key or i + 1 >= n or segment[i].kind != "=":
            break
        i += 1
        parts = [segment[i].text]
        i += 1
        # A value runs on while nothing separates it from the next token: base64 in
        # header.b ("ab/c+d=="), or a quoted local part ("a b"@example.com).
        while i < n and segment[i].glued:
            parts.append(segment[i].text)
            i += 1
        props.append(("".join(key).lower(), "".join(parts)))
    return _Result(method, result, tuple(props))
