"""The SQLite store: one file per workspace, WAL mode, schema migrations, retried transactions."""

from .db import Store

__all__ = ["Store"]
