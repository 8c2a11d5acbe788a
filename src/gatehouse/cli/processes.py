"""Starting servers from the CLI: the gateway, and the simulator as a child process."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from gatehouse.proxy.asgi import QuietAborts


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listening on {host}:{port} after {timeout:g}s"
                ) from None
            time.sleep(0.05)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # Linux: the simulator goes when the gateway goes, even on kill -9.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def simulator(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run `gatehouse sim` as a child process; yields its base URL."""
    port = port or free_port(host)
    command = [sys.executable, "-m", "gatehouse", "sim", "--host", host, "--port", str(port)]
    child = subprocess.Popen(command, preexec_fn=_die_with_parent)
    try:
        wait_for_port(host, port)
        yield f"http://{host}:{port}"
    finally:
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()


def uvicorn_config(app: Any, host: str, port: int, **extra: Any) -> uvicorn.Config:
    """The server settings Gatehouse is measured with: uvloop, httptools, no access log."""
    logging.getLogger("uvicorn.error").addFilter(QuietAborts())
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=os.environ.get("GATEHOUSE_LOG_LEVEL", "warning").lower(),
        timeout_keep_alive=75,
        **extra,
    )
