"""stop_process: a child that honours SIGTERM stops on it; one that ignores it is killed after
the grace period; an exited child is only reaped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from registry.core.proc import stop_process

SLEEPER = "import time; print('up', flush=True); time.sleep(60)"
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(60)"
)


def _start(code: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"  # its handlers are in place
    return proc


def test_a_child_that_honours_sigterm_stops_on_it() -> None:
    assert stop_process(_start(SLEEPER), grace=30) == -signal.SIGTERM


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period() -> None:
    started = time.monotonic()
    assert stop_process(_start(STUBBORN), grace=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 30


def test_an_exited_child_is_reaped_with_its_status() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    assert stop_process(proc) == 3
