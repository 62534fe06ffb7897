"""Child processes: the one way to stop one (the demo's server, the bench's, the tests').

Invariant: `stop_process` returns only once the child is gone and reaped: SIGTERM first, so a
server finishes its requests and removes what it owns, then SIGKILL after `grace` seconds.
"""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen, grace: float = 30.0) -> int:
    """Terminate `proc`, kill it if it outlives `grace` seconds; its exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()
