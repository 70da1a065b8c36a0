"""Exception classes, one per exit code, so the CLI maps failures without guessing."""

from __future__ import annotations


class EtlError(Exception):
    """Base class; ``exit_code`` is what the CLI returns for this failure."""

    exit_code = 1
    kind = "unexpected"


class ConfigError(EtlError):
    """A setting is missing or malformed (usage error)."""

    exit_code = 2
    kind = "config"


class BatchRejectedError(EtlError):
    """Too many rows failed validation; the batch loaded nothing."""

    exit_code = 3
    kind = "rejected"


class InputError(EtlError):
    """An input file is missing, malformed or undecodable."""

    exit_code = 4
    kind = "input"


class DatabaseError(EtlError):
    """The server is unreachable, refused the login, or a statement failed."""

    exit_code = 5
    kind = "database"


class MigrationError(DatabaseError):
    """An applied migration was edited, or a migration failed to apply."""


class IntegrityAssertionError(EtlError):
    """An internal count check failed: rows would have gone missing."""

    exit_code = 1
    kind = "unexpected"
