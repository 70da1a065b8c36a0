#!/usr/bin/env python3
"""Check, from one test host, that every other test host resolves and answers.

Usage: reach.py HOST [HOST ...]   (run on a test host by playbooks/testbed_ready.yml)

A host is reached when a TCP connection to a port nothing listens on is
refused: the refusal comes from that host's kernel, so name resolution and
the route both work, and no service has to be running yet. Prints one line
per host that fails and exits 1; prints nothing and exits 0 when all answer.
"""

from __future__ import annotations

import socket
import sys

_PROBE_PORT = 1
_TIMEOUT_S = 3.0


def problem(name: str) -> str | None:
    """Why NAME cannot be reached from here, or None when it can."""
    try:
        addr = socket.getaddrinfo(name, _PROBE_PORT, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except socket.gaierror as exc:
        return f"{name}: name does not resolve ({exc.strerror})"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(_TIMEOUT_S)
    try:
        sock.connect((addr, _PROBE_PORT))
    except ConnectionRefusedError:
        return None
    except TimeoutError:
        return f"{name} ({addr}): no answer within {_TIMEOUT_S:.0f} s"
    except OSError as exc:
        return f"{name} ({addr}): unreachable ({exc.strerror})"
    finally:
        sock.close()
    return None


def main(names: list[str]) -> int:
    problems = [p for p in map(problem, names) if p]
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
