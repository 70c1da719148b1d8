"""Children that a test interrupts with SIGINT must see Ctrl-C as a terminal user would.

A suite started as a background job of a non-interactive shell (`bash .ci/run &`, `nohup ... &`)
inherits SIGINT ignored, exec keeps an ignored signal ignored, and Python then installs no
KeyboardInterrupt handler: the child never sees the test's Ctrl-C (a run finished with exit 0, a
server never stopped). `preexec_fn=default_sigint` gives the child the default disposition back.
"""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """In the forked child before exec: SIGINT back to its default, so Python installs its handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
