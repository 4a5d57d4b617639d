"""A fast, never-raising view of a raw header block.

``email.parser`` builds a full :class:`email.message.Message` per message, which
costs more than everything else a first sync does per message. The sync only
needs a handful of fields by name, so this splits the block itself (RFC 5322
§2.2: ``name: value`` lines, continuation lines start with white space) and offers
the few ``Message`` methods that ghostwatch's parsing and classification call.
Values are ``str`` with undecoded 8-bit bytes as surrogate escapes, exactly as the
``compat32`` policy hands them out; RFC 2047 words are left encoded.
"""

from __future__ import annotations

from typing import overload


class HeaderMap:
    __slots__ = ("_fields", "defects")

    def __init__(self, raw: bytes) -> None:
        self._fields: dict[str, list[str]] = {}
        self.defects: list[str] = []
        text = raw.decode("ascii", "surrogateescape")
        name: str | None = None
        parts: list[str] = []
        for line in text.splitlines():
            if not line.strip():
                if name is None and not self._fields:
                    continue  # leading blank lines
                break  # end of the header block
            if line[0] in " \t":
                if name is None:
                    self.defects.append("continuation line before any field")
                else:
                    parts.append(line.strip())
                continue
            if name is not None:
                self._add(name, parts)
            field, colon, value = line.partition(":")
            if not colon or not field.strip() or " " in field.strip():
                self.defects.append("line without a field name")
                name = None
                continue
            name = field.strip().lower()
            parts = [value.strip()]
        if name is not None:
            self._add(name, parts)

    def _add(self, name: str, parts: list[str]) -> None:
        self._fields.setdefault(name, []).append(" ".join(p for p in parts if p))

    @overload
    def get_all(self, name: str) -> list[str] | None: ...
    @overload
    def get_all(self, name: str, failobj: list[str]) -> list[str]: ...
    def get_all(self, name: str, failobj: list[str] | None = None) -> list[str] | None:
        values = self._fields.get(name.lower())
        return list(values) if values else failobj

    def get(self, name: str, failobj: str | None = None) -> str | None:
        values = self._fields.get(name.lower())
        return values[0] if values else failobj

    def names(self) -> frozenset[str]:
        """The lowercased names of the fields present."""
        return frozenset(self._fields)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._fields

    def get_content_type(self) -> str:
        """Like ``Message.get_content_type``: ``text/plain`` when missing or invalid."""
        value = self.get("content-type")
        if not value:
            return "text/plain"
        ctype = value.split(";", 1)[0].strip().lower()
        return ctype if ctype.count("/") == 1 else "text/plain"

    def get_param(
        self, param: str, failobj: str | None = None, header: str = "content-type"
    ) -> str | None:
        """A parameter of a structured field (``report-type`` of Content-Type)."""
        value = self.get(header)
        if not value:
            return failobj
        wanted = param.lower()
        for piece in _split_params(value)[1:]:
            key, eq, val = piece.partition("=")
            if eq and key.strip().lower() == wanted:
                return val.strip().strip('"')
        return failobj


def _split_params(value: str) -> list[str]:
    """Split on semicolons outside double quotes."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
    out.append("".join(current))
    return out
