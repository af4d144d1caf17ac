"""``qlik_email_resource.testing``, the runner's first name, still works for users."""

from __future__ import annotations

import subprocess
import sys

import qlik_email_resource.offline as offline
import qlik_email_resource.testing as testing


def test_the_old_import_gives_the_same_objects() -> None:
    for name in offline.__all__:
        assert getattr(testing, name) is getattr(offline, name)


def test_the_old_module_still_runs_from_a_shell() -> None:
    done = subprocess.run([sys.executable, "-m", "qlik_email_resource.testing", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "stack" in done.stdout
