"""Reading the schema files that sit beside this module."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def schema_statements(filename: str) -> list[str]:
    """The statements in `filename` (schema_mysql.sql or schema_sqlite.sql), comments dropped.

    The files keep `;` only between statements, so splitting on it is enough.
    """
    text = (_HERE / filename).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]
