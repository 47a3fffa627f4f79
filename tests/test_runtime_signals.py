"""GracefulStop: SIGINT/SIGTERM become a flag; a second Ctrl-C aborts."""
import os
import signal
import threading
import time

import pytest

from streamfm.runtime.signals import GracefulStop


def wait_for(condition, timeout=5.0):
    # The Python-level handler runs at the next bytecode boundary of the
    # main thread: normally at once, but do not rely on it.
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "signal not handled"
        time.sleep(0.001)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_sets_the_flag_and_handlers_are_restored(signum):
    before = {s: signal.getsignal(s) for s in GracefulStop.SIGNALS}
    heard = []
    with GracefulStop(on_request=heard.append) as stop:
        assert stop.active and not stop.requested
        os.kill(os.getpid(), signum)
        wait_for(lambda: stop.requested)
        assert stop.signal_name == signum.name
        assert heard == [signum.name]
    assert not stop.active
    assert {s: signal.getsignal(s) for s in GracefulStop.SIGNALS} == before


def test_second_sigint_raises_keyboard_interrupt():
    before = signal.getsignal(signal.SIGINT)  # not always Python's: a shell's background job ignores SIGINT
    with pytest.raises(KeyboardInterrupt):
        with GracefulStop() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            wait_for(lambda: stop.requested)
            os.kill(os.getpid(), signal.SIGINT)  # the user insists
            time.sleep(5)  # interrupted by the KeyboardInterrupt
    assert stop.signal_name == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is before


def test_repeated_sigterm_only_keeps_the_flag():
    with GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(lambda: stop.requested)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.requested and stop.signal_name == "SIGTERM"


def test_sigint_after_sigterm_aborts():
    with pytest.raises(KeyboardInterrupt):
        with GracefulStop() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            wait_for(lambda: stop.requested)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)


def test_no_op_outside_the_main_thread():
    before = signal.getsignal(signal.SIGINT)
    seen = {}

    def run():
        with GracefulStop() as stop:
            seen["active"] = stop.active
            seen["handler"] = signal.getsignal(signal.SIGINT)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == {"active": False, "handler": before}
