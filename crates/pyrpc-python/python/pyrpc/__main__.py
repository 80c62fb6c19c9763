"""``python -m pyrpc``: the ``pyrpc`` command (ping, call, methods, stats).

The very command of the Rust ``pyrpc-cli`` crate, run inside the extension
module: same arguments, output and exit codes. The wheel installs it as the
``pyrpc`` script too."""

from __future__ import annotations

import signal
import sys
from typing import Optional, Sequence

from . import _pyrpc


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``) and return
    its exit code (0 ok, 1 remote exception, 2 usage, 3 timeout, 4
    unreachable, 5 protocol error)."""
    args = list(sys.argv[1:] if argv is None else argv)
    # The command writes to the process's stdout/stderr directly: let
    # Python's buffered output go first.
    sys.stdout.flush()
    sys.stderr.flush()
    return _pyrpc.cli_main(["pyrpc", *args])


def script() -> None:
    """The console script: Ctrl-C ends the command at once, as it ends the
    Rust binary (the call runs without the GIL, so Python's handler would
    wait for it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(main())


if __name__ == "__main__":
    script()
