"""Sales extracts into a partitioned PostgreSQL star schema, exactly once."""

__version__ = "0.1.0"
