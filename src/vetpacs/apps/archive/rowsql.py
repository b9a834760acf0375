"""Prepared multi-row INSERTs for ingest's index transaction.

Django's bulk_create builds its SQL and adapts every value (JSON encoding of an instance's DICOM JSON
included) while the transaction is open; on SQLite that is while the one write lock is held. Here the
values are made ready before the transaction (`prepare`), and the transaction runs the statements only
(`insert`): the same rows, adapted by the same field methods bulk_create uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, models

# Rows per statement: well under SQLite's 32766 and PostgreSQL's 65535 bound parameters.
ROWS_PER_STATEMENT = 200


class PreparedInsert:
    """INSERTs into one model's table; its columns in field order, the primary key left to the database."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.fields = [f for f in model._meta.local_concrete_fields if not f.primary_key]
        self._position = {f.attname: i for i, f in enumerate(self.fields)}
        quote = connection.ops.quote_name
        self._head = "INSERT INTO {} ({}) VALUES ".format(  # noqa: S608 - names from the model only
            quote(model._meta.db_table), ", ".join(quote(f.column) for f in self.fields)
        )
        self._marks = "(" + ", ".join(["%s"] * len(self.fields)) + ")"
        self._returning = f" RETURNING {quote(model._meta.pk.column)}"

    def prepare(self, obj: models.Model) -> list[Any]:
        """The row's values as the database takes them (auto_now_add fields set now)."""
        return [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in self.fields]

    def set(self, row: list[Any], attname: str, value: Any) -> None:
        """Fill a value known only inside the transaction (a foreign key's id)."""
        row[self._position[attname]] = value

    def insert(self, rows: Sequence[list[Any]]) -> list[int]:
        """Insert the rows; their new primary keys, in order."""
        ids: list[int] = []
        with connection.cursor() as cursor:
            for start in range(0, len(rows), ROWS_PER_STATEMENT):
                chunk = rows[start : start + ROWS_PER_STATEMENT]
                sql = self._head + ", ".join([self._marks] * len(chunk)) + self._returning
                cursor.execute(sql, [v for row in chunk for v in row])
                ids.extend(r[0] for r in cursor.fetchall())
        if len(ids) != len(rows):
            raise RuntimeError(f"{self.model.__name__}: {len(rows)} rows inserted, {len(ids)} keys returned")
        return ids


def delete_where_in(model: type[models.Model], attname: str, values: Sequence[Any]) -> None:
    """DELETE the rows whose column is one of values (no signals, no cascade: for leaf tables only)."""
    if not values:
        return
    quote = connection.ops.quote_name
    column = model._meta.get_field(attname).column
    table = quote(model._meta.db_table)
    with connection.cursor() as cursor:
        for start in range(0, len(values), ROWS_PER_STATEMENT):
            chunk = list(values[start : start + ROWS_PER_STATEMENT])
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"DELETE FROM {table} WHERE {quote(column)} IN ({marks})", chunk)  # noqa: S608
