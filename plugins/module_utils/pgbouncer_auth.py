# Copyright: warehouse-ops contributors
# Apache License 2.0
"""Pure helpers for pgBouncer's auth_file: parse, render, SCRAM verifiers.

pgBouncer passes SCRAM through to PostgreSQL only when its copy of a user's
secret is byte-identical to the server's verifier in pg_authid (same salt and
iteration count). These helpers therefore never invent a salt: they copy the
server's verifier, or recompute it from a password with the server's own salt
and iteration count.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import stringprep
import unicodedata

SCRAM_PREFIX = "SCRAM-SHA-256$"
_VERIFIER = re.compile(
    r"^SCRAM-SHA-256\$(?P<iterations>[0-9]+):(?P<salt>[A-Za-z0-9+/=]+)"
    r"\$(?P<stored>[A-Za-z0-9+/=]+):(?P<server>[A-Za-z0-9+/=]+)$"
)
# Role names pgBouncer and PostgreSQL both accept in an auth_file line.
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,63}$")


class AuthFileError(ValueError):
    """The auth_file or a secret in it is malformed."""


def parse_verifier(verifier: str) -> tuple[int, bytes, bytes, bytes]:
    """Split a SCRAM-SHA-256 verifier into iterations, salt, StoredKey, ServerKey."""
    match = _VERIFIER.match(verifier)
    if not match:
        raise AuthFileError(
            "not a SCRAM-SHA-256 verifier "
            "(expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)"
        )
    try:
        return (
            int(match.group("iterations")),
            base64.b64decode(match.group("salt"), validate=True),
            base64.b64decode(match.group("stored"), validate=True),
            base64.b64decode(match.group("server"), validate=True),
        )
    except (ValueError, TypeError) as exc:
        raise AuthFileError(f"SCRAM-SHA-256 verifier has bad base64: {exc}") from exc


def saslprep(password: str) -> bytes:
    """PostgreSQL's treatment of a password before hashing (RFC 4013 SASLprep).

    Like PostgreSQL, fall back to the raw UTF-8 bytes when the password is not
    valid for SASLprep (prohibited or bidi-violating characters).
    """
    if password.isascii():
        # Printable ASCII maps to itself; PostgreSQL keeps control characters as they are.
        return password.encode("utf-8")
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch
        for ch in password
        if not stringprep.in_table_b1(ch)
    )
    normalized = unicodedata.normalize("NFKC", mapped)
    prohibited = (
        stringprep.in_table_c12, stringprep.in_table_c21_c22, stringprep.in_table_c3,
        stringprep.in_table_c4, stringprep.in_table_c5, stringprep.in_table_c6,
        stringprep.in_table_c7, stringprep.in_table_c8, stringprep.in_table_c9,
        stringprep.in_table_a1,
    )
    if any(check(ch) for ch in normalized for check in prohibited):
        return password.encode("utf-8")
    has_randal = any(stringprep.in_table_d1(ch) for ch in normalized)
    if has_randal and (
        any(stringprep.in_table_d2(ch) for ch in normalized)
        or not (stringprep.in_table_d1(normalized[0]) and stringprep.in_table_d1(normalized[-1]))
    ):
        return password.encode("utf-8")
    return normalized.encode("utf-8")


def scram_verifier(password: str, salt: bytes, iterations: int) -> str:
    """The verifier PostgreSQL stores for password with this salt and iteration count."""
    if iterations < 1:
        raise AuthFileError("SCRAM iteration count must be positive")
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return (
        f"{SCRAM_PREFIX}{iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def verifier_matches(password: str, verifier: str) -> bool:
    """Whether password is the one verifier was made from (constant-time compare)."""
    iterations, salt, _stored, _server = parse_verifier(verifier)
    return hmac.compare_digest(scram_verifier(password, salt, iterations), verifier)


def check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise AuthFileError(f"invalid user name {name!r}: 1-63 characters, no control characters")


def _unquote(field: str) -> str:
    return field[1:-1].replace('""', '"')


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


_LINE = re.compile(r'^\s*("(?:[^"]|"")*")\s+("(?:[^"]|"")*")')


def parse_auth_file(text: str) -> dict[str, str]:
    """Users and secrets of an auth_file; pgBouncer ignores lines without a quoted pair."""
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith((";", "#")):
            continue
        match = _LINE.match(line)
        if not match:
            raise AuthFileError(f"line {number}: expected \"user\" \"secret\"")
        users[_unquote(match.group(1))] = _unquote(match.group(2))
    return users


def render_auth_file(users: dict[str, str]) -> str:
    """The auth_file for these users, sorted by name so that reruns are byte-identical."""
    return "".join(f"{_quote(name)} {_quote(users[name])}\n" for name in sorted(users))


def redact(secret: str) -> str:
    """A secret as it may appear in a diff or log.

    Kind, iteration count and a short fingerprint (so that a changed secret
    shows as a changed line); nothing that helps recover or replay it.
    """
    mark = hashlib.sha256(secret.encode("utf-8")).hexdigest()[:8]
    if secret.startswith(SCRAM_PREFIX):
        iterations = secret[len(SCRAM_PREFIX):].split(":", 1)[0]
        return f"SCRAM-SHA-256${iterations}:<redacted {mark}>"
    if secret.startswith("md5"):
        return f"md5<redacted {mark}>"
    return f"<redacted {mark}>"


def redacted_listing(users: dict[str, str]) -> str:
    """The auth_file's shape for --diff: every user, no secret."""
    return "".join(f"{_quote(name)} {_quote(redact(users[name]))}\n" for name in sorted(users))
