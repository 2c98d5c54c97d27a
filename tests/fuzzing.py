"""The property-based fuzzing suite's shared pieces (issue 14).

``fuzz(n)`` makes a hypothesis property: ``n`` generated cases (times ``RESATTN_FUZZ_SCALE``),
derandomised so that CI and a laptop run the same cases, no example database, no per-case
deadline (a hang is caught by ``invoke``'s alarm instead). Every case run is counted in
``CASES``; the test session prints the total (``conftest.pytest_terminal_summary``).

``invoke(*args)`` runs the real command line in this process (``resattn.cli.main``: the same
error handling a user meets) and returns its exit code, stdout and stderr. ``assert_refused``
is the contract for a bad input: exit code 2, one ``error:`` line (or click's usage box) that
names ``what``, never the last-resort "internal error" or a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings

SCALE = float(os.environ.get("RESATTN_FUZZ_SCALE", "1"))
CASES: Counter[str] = Counter()
HANG_SECONDS = 60  # one case of a command that fails on its options takes well under a second


def fuzz(n: int) -> Callable:
    """Decorator (below ``@given``): ``n`` counted, reproducible cases."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def counted(*args: Any, **kwargs: Any) -> Any:
            CASES[f"{fn.__module__}::{fn.__name__}"] += 1
            return fn(*args, **kwargs)

        counted.__signature__ = inspect.signature(fn)  # what @given reads
        return settings(max_examples=max(1, round(n * SCALE)), deadline=None,
                        derandomize=True, database=None, print_blob=False,
                        suppress_health_check=list(HealthCheck))(counted)
    return wrap


class Hang(BaseException):
    """A command ran past ``HANG_SECONDS`` (a BaseException: no handler of ours swallows it)."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang(f"no answer within {HANG_SECONDS} s")


def invoke(*args: Any, timeout: int = HANG_SECONDS) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``resattn ARGS`` run in this process."""
    from resattn import cli

    out, err = io.StringIO(), io.StringIO()
    argv, handler = sys.argv, signal.signal(signal.SIGALRM, _alarm)
    sys.argv = ["resattn", *map(str, args)]
    signal.alarm(timeout)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # main() installs its own
        sys.argv = argv
        cli._reported.clear()
    return code, out.getvalue(), err.getvalue()


def one_line(text: str) -> str:
    """The message without the terminal's soft wrapping and click's box characters."""
    for ch in "╭╮╰╯│─":
        text = text.replace(ch, " ")
    return " ".join(text.split())


def assert_refused(result: tuple[int, str, str], *what: str) -> str:
    """A bad input's contract: exit 2, a message naming each of ``what``, no bug report."""
    code, out, err = result
    message = one_line(err)
    assert "Traceback" not in err + out, err
    assert "internal error" not in message, message
    assert code == 2, f"exit {code}, expected 2 (refused): {message or out[-500:]}"
    lowered = message.lower()
    for word in what:
        assert word.lower() in lowered, f"{word!r} not named in: {message}"
    return message


def assert_no_bug(result: tuple[int, str, str]) -> int:
    """Any input's contract: success (0) or a user error (2); never a bug, hang or traceback."""
    code, out, err = result
    assert "Traceback" not in err + out, err
    assert "internal error" not in one_line(err), one_line(err)
    assert code in (0, 2), f"exit {code}: {one_line(err)}"
    return code
