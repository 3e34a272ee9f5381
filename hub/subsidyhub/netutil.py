"""Networking helpers shared by the launcher, the service, the hub plugin, the tests and the
benchmarks: free loopback ports, the one TLS context every HTTP client uses, and waiting for a
starting server to answer."""

from __future__ import annotations

import functools
import random
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_pick = random.SystemRandom()


def _ephemeral_low() -> int:
    """The first port the kernel hands to outgoing connections (Linux; 32768 elsewhere)."""
    try:
        return int(EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, below the kernel's ephemeral range.

    A port the OS picks (bind to 0) comes from that range, which outgoing connections draw
    their local ports from too: between the pick and the listener's bind, a connection may
    take it (the listener then fails with "address in use"), or a client may even connect to
    itself on it and read its own request back. Below the range only listeners compete.
    """
    low = _ephemeral_low()
    floor = 10_000 if low > 11_000 else 1024
    for _ in range(200):
        port = _pick.randint(floor, low - 1)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # the low range is full: let the OS pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's client TLS context (the CA bundle httpx would load), built once.

    httpx builds a context and loads the CA bundle for every client it makes, ~20 ms of CPU
    each, even for the plain-HTTP loopback calls most of ours are: a service made a few per
    app and one per GPU sample, and a poll for a starting hub one per try. A context can be
    shared by any number of clients and threads; pass it as ``verify=``.
    """
    return httpx.create_ssl_context()


def wait_for(
    url: str,
    *,
    timeout: float,
    ready: Callable[[httpx.Response], bool] = lambda r: r.status_code < 500,
    alive: Callable[[], bool] = lambda: True,
    headers: Mapping[str, str] | None = None,
    interval: float = 0.1,
) -> httpx.Response:
    """Poll ``url`` every ``interval`` s until ``ready(response)``: the response; raises
    ``TimeoutError``, or ``RuntimeError`` as soon as ``alive()`` says the server's process ended.
    One client serves every try."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(headers=dict(headers or {}), timeout=2, verify=tls_context()) as http:
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError(f"the process behind {url} exited while waiting for it")
            try:
                response = http.get(url)
                if ready(response):
                    return response
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                last = type(error).__name__
            time.sleep(interval)
    raise TimeoutError(f"{url} was not ready after {timeout:.0f} s (last: {last})")
