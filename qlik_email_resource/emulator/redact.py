"""Blank out secrets in text we answer with, in every spelling text can carry them.

A password rarely comes back raw: an exception's repr writes ``Gr\\xfc\\xdfe`` and
``pa\\'ss``, a JSON text ``Gr\\u00fc\\u00dfe`` and ``pa\\"ss``, a URL ``Gr%C3%BC%C3%9Fe``, an
HTML page ``pa&quot;ss``, and an SMTP server may echo any of these. Replacing only the raw
value (what the emulator did first) misses all of them.
"""

from __future__ import annotations

import html
import json
import re
from urllib.parse import quote, quote_plus

MASK = "***"


def spellings(secret: str) -> set[str]:
    """The secret as it reads raw, in a repr, JSON, a URL, HTML, or with quotes escaped;
    and each of those quoted once more (a repr inside a JSON string)."""
    # JSON may carry lone surrogates ("\ud800"): encode them rather than fail.
    utf8 = secret.encode("utf-8", "surrogatepass")
    forms = {
        secret,
        repr(secret)[1:-1],  # keeps printable non-ASCII, escapes one quote kind
        ascii(secret)[1:-1],  # \xfc, \u0436
        json.dumps(secret)[1:-1],  # \u00fc, \"
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(utf8)[2:-1],  # \xc3\xbc
        quote(utf8, safe=""),  # %C3%BC (matched in any case: encoders differ)
        quote_plus(utf8, safe=""),
        html.escape(secret),
        # quotes escaped, by an escaper that doubles backslashes and by one that does not
        secret.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"'),
        secret.replace("'", "\\'").replace('"', '\\"'),
    }
    forms |= {form.replace("\\", "\\\\") for form in forms}
    return {form for form in forms if form}


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every spelling of every secret replaced by ``***``, in any letter
    case (percent-encoders differ in hex case; masking a case variant costs nothing)."""
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms |= spellings(secret)
    if not forms:
        return text
    # Longest first, so a spelling that contains another is masked whole.
    pattern = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
    return re.sub(pattern, MASK, text, flags=re.IGNORECASE)
