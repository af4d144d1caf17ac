"""The demo's one failure: a step that did not work."""


class DemoError(Exception):
    """A step failed; the message says what to do."""
