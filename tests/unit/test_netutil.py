"""free_port picks below the kernel's ephemeral range; tls_context is one verifying context."""

from __future__ import annotations

import socket
import ssl

from subsidyhub import netutil


def test_ports_are_free_and_below_the_ephemeral_range() -> None:
    low = netutil._ephemeral_low()
    ports = {netutil.free_port() for _ in range(20)}
    assert all(1024 <= port < low for port in ports)
    assert len(ports) > 1  # chosen at random, so two stacks rarely try the same one
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_without_the_kernel_setting_the_usual_range_is_assumed(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(netutil, "EPHEMERAL", tmp_path / "missing")
    assert netutil._ephemeral_low() == 32768
    assert netutil.free_port() < 32768


def test_one_tls_context_serves_every_client_and_still_verifies() -> None:
    """Shared to spare each client loading the CA bundle, not to relax checking."""
    context = netutil.tls_context()
    assert netutil.tls_context() is context
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0
