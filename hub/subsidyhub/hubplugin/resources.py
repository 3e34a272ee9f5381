"""Profile sizes as spawners take them: memory in bytes, from the GiB written in subsidyhub.yaml.

Why a module of its own: every backend (Kubernetes pods, Docker containers) must give a server
exactly the memory its profile is priced for, so the conversion is one function that each
backend's builder imports, rather than one backend borrowing it from another.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

MIB = 1024**2
GIB = 1024**3


def memory_bytes(gib: Decimal) -> int:
    """GiB (as written in subsidyhub.yaml) → bytes, rounded up to a whole MiB."""
    mib = (gib * 1024).to_integral_value(rounding=ROUND_CEILING)
    return int(mib) * MIB
