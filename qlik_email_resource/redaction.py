"""Take secrets out of text before it is shown: the one redaction helper.

Servers echo what they were sent, and rarely verbatim: a Python tenant puts a
password in an error title through ``repr`` (``'Gr\\xfc\\xdfe'``), a JSON encoder
writes ``Gr\\u00fc\\u00dfe``, a proxy logs ``Gr%C3%BC%C3%9Fe``, an SMTP server
repeats the base64 of ``AUTH PLAIN``. ``redact`` finds a secret in any of those
forms (and in mixtures of them, since each character may be written its own way)
and replaces it with ``[secret]``. Everything that shows text from outside (the
client's errors, the provider's check failures and SMTP messages, the fleet's
table) goes through here.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from functools import lru_cache

REDACTED = "[secret]"
# One or more: an escape may itself have been escaped (a repr inside JSON: \\u00fc).
_BACKSLASHES = r"\\+"
_SHORT_ESCAPES = {"\n": "n", "\r": "r", "\t": "t", "\b": "b", "\f": "f", "\v": "v", "\a": "a"}
_HTML_NAMES = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos"}
# Base64 of a secret shorter than this is too short to tell from other base64.
_MIN_BASE64_SECRET = 6


def _character(char: str) -> str:
    """A regex for one character of a secret, written in any of the usual escapes."""
    code = ord(char)
    bs = _BACKSLASHES
    forms = {re.escape(char), f"{bs}U{code:08x}", f"&#0*{code};", f"&#x0*{code:x};"}
    if code < 0x100:
        forms.add(f"{bs}x{code:02x}")  # repr / ascii()
    if code < 0x10000:
        forms.add(f"{bs}u{code:04x}")  # JSON, repr of non-Latin-1 characters
    else:  # JSON writes characters beyond the BMP as a surrogate pair
        offset = code - 0x10000
        forms.add(f"{bs}u{0xD800 + (offset >> 10):04x}{bs}u{0xDC00 + (offset & 0x3FF):04x}")
    utf8 = char.encode("utf-8", "surrogatepass")
    if len(utf8) > 1:
        forms.add("".join(f"{bs}x{byte:02x}" for byte in utf8))  # repr of the bytes
    forms.add("".join(f"%(?:25)?{byte:02x}" for byte in utf8))  # percent-encoded, or twice
    if char == " ":
        forms.add(r"\+")  # form encoding
    if char in "\\'\"/":
        forms.add(bs + re.escape(char))
    if char in _SHORT_ESCAPES:
        forms.add(bs + _SHORT_ESCAPES[char])
    if char in _HTML_NAMES:
        forms.add(f"&{_HTML_NAMES[char]};")
    return "(?:" + "|".join(sorted(forms, key=len, reverse=True)) + ")"


def _base64_forms(secret: str) -> list[str]:
    """The base64 characters that only the secret's bytes decide, for each of the
    three alignments it can have inside a longer encoded string (AUTH PLAIN is
    base64 of ``\\0user\\0password``)."""
    raw = secret.encode("utf-8", "surrogatepass")
    if len(raw) < _MIN_BASE64_SECRET:
        return []
    forms = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw).decode()
        start = -(-8 * pad // 6)  # first character made of secret bits only
        end = 8 * (pad + len(raw)) // 6  # past the last such character
        forms.append(encoded[start:end])
    return forms


def secret_pattern(secret: str) -> str:
    """A regex source that matches ``secret`` in clear or escaped (case-insensitive)."""
    escaped = "".join(_character(char) for char in secret)
    # base64 is case-sensitive; everything else is matched ignoring case (hex digits,
    # and servers that lowercase what they echo, such as host names).
    encoded = [f"(?-i:{re.escape(form)})" for form in _base64_forms(secret)]
    return "|".join([escaped, *encoded])


@lru_cache(maxsize=64)
def _compiled(secrets: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{secret_pattern(s)})" for s in secrets), re.IGNORECASE)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced by ``[secret]``, in whatever form it appears."""
    values = {s for s in secrets if isinstance(s, str) and s}
    # Inputs are stripped before they are quoted (and servers strip too): a secret with
    # surrounding blanks shows without them.
    values |= {s.strip() for s in values if s.strip()}
    # Longest first, so that a secret containing another is replaced whole.
    known = tuple(sorted(values, key=len, reverse=True))
    if not known or not text:
        return text
    return _compiled(known).sub(REDACTED, text)
