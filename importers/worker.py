"""The reading process of a large import (see :func:`importers.pipeline.produce`):
``python -m importers.worker`` reads its task from stdin and writes pickled messages to stdout.

Anything a library prints goes to stderr: the message stream keeps stdout to itself. The
process ends with the importing one (Linux: the parent-death signal), so that a killed import
does not leave a reader busy on a large file.
"""
from __future__ import annotations

import os
import sys


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the broken pipe ends it, a little later
        pass
    if str(os.getppid()) != os.environ.get("MAPSERVICE_IMPORT_PARENT", str(os.getppid())):
        os._exit(1)  # the importing process died before the signal was set


def main() -> None:
    try:
        _die_with_parent()
        sink = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        from importers.pipeline import produce

        produce(sys.stdin.buffer, sink)
        sink.close()
    except BrokenPipeError:
        os._exit(0)  # the importing process stopped listening; nothing left to say
    except KeyboardInterrupt:  # Ctrl-C reaches both processes; the importing one reports it
        os._exit(130)


if __name__ == "__main__":
    main()
