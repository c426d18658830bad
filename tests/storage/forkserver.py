"""Starts ``recloop serve`` processes quickly for the crash test: this process imports recloop
(torch, FastAPI...) once, single-threaded, then forks one child per request, which runs
``recloop.cli.main.main(argv)`` as the ``recloop`` command does. Each line on stdin is a JSON
``{"argv": [...], "env": {...}, "stderr": PATH}``; the answer is the child's pid."""

from __future__ import annotations

import json
import os
import signal
import sys

import uvicorn  # noqa: F401  (imported before forking, so children start at once)

import recloop.engine.durable  # noqa: F401
import recloop.serving  # noqa: F401
from recloop.cli.main import main


def serve_forever() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.environ.update(request["env"])
            err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(err, 2)
            code = 1
            try:
                code = main(request["argv"])
            finally:
                os._exit(code)
        sys.stdout.write(f"{pid}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve_forever()
