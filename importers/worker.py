"""The reading process of a large import (see :func:`importers.pipeline.produce`):
``python -m importers.worker`` reads its task from stdin and writes pickled messages to stdout.

Anything a library prints goes to stderr: the message stream keeps stdout to itself."""
from __future__ import annotations

import os
import sys


def main() -> None:
    sink = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    from importers.pipeline import produce

    try:
        produce(sys.stdin.buffer, sink)
        sink.close()
    except BrokenPipeError:
        os._exit(0)  # the importing process stopped listening; nothing left to say
    except KeyboardInterrupt:  # Ctrl-C reaches both processes; the importing one reports it
        os._exit(130)


if __name__ == "__main__":
    main()
