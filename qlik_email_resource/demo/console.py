"""What the demo prints: numbered steps and indented details, secrets scrubbed."""

from __future__ import annotations

from typing import TextIO

from qlik_email_resource.redaction import redact


class Console:
    """Numbered steps and indented details, on one stream, flushed as they come."""

    def __init__(self, out: TextIO, secrets: list[str]) -> None:
        self.out = out
        # The caller adds to this list as it learns secrets (the emulator's keys).
        self.secrets = secrets
        self.number = 0

    def step(self, title: str) -> None:
        self.number += 1
        self.write(f"\n==> {self.number}. {title}")

    def info(self, text: str = "") -> None:
        for line in text.splitlines() or [""]:
            self.write(f"    {line}")

    def write(self, text: str) -> None:
        self.out.write(redact(text, self.secrets) + "\n")
        self.out.flush()
