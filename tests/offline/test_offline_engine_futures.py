"""A failing stack leaves no asyncio future behind (issue #10 item 6).

Each resource the SDK registers holds futures for its outputs; when a registration
raised, the SDK set the exception on every one of them and nothing ever looked,
so the garbage collector printed "Future exception was never retrieved" with a
traceback per output (thousands of lines for two failing tenants). The run happens
in a subprocess because those messages come from garbage collection, at any time
up to interpreter exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPT = """
import sys
from pathlib import Path

from tests.offline.toy_provider import toy_program

from qlik_email_resource.offline import OfflineRunError, OfflineStack, Secret

work = Path(sys.argv[1])
cases = {
    # rejected by the provider's Check in the preview pass
    "check": {"toy:things": "a,b,c", "toy:port": "many"},
    # Create fails in the apply pass: the toy store is a directory
    "create": {"toy:things": "a,b,c"},
}
for name, config in cases.items():
    store = work / ("store-dir" if name == "create" else "store.json")
    with OfflineStack(
        toy_program, project="toy", stack=name, quiet=True,
        config={"toy:password": Secret("pw"), **config},
        state_file=work / f"{name}.json",
        env={"TOY_STORE": str(store), "PYTHONPATH": sys.argv[2]},
    ) as stack:
        try:
            stack.up()
        except OfflineRunError as exc:
            print(f"{name} failed: {exc}", flush=True)
"""


def test_failing_stacks_leave_no_unretrieved_future(tmp_path: Path) -> None:
    (tmp_path / "store-dir").mkdir()
    script = tmp_path / "failing.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1]),
           "PYTHONASYNCIODEBUG": "1"}
    done = subprocess.run(
        [sys.executable, "-X", "dev", str(script), str(tmp_path), str(HERE.parents[1])],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Both stacks really failed, each with its own cause.
    assert "check failed: the provider rejected the inputs of" in done.stdout
    assert "port must be an integer" in done.stdout
    assert "create failed: create of urn:pulumi:create::toy::" in done.stdout
    for leak in ("Future exception was never retrieved", "Task exception was never retrieved",
                 "Task was destroyed but it is pending"):
        assert leak not in done.stderr, done.stderr[:3000]
