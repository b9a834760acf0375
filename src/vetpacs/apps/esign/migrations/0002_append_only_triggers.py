"""The evidence tables refuse UPDATE and DELETE in the database itself, not only in the ORM (存证)."""

from django.db import migrations

TABLES = ["esign_realnameverification", "esign_signingkey", "esign_signature"]


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            "CREATE OR REPLACE FUNCTION vetpacs_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'append-only table %', TG_TABLE_NAME; END $$ LANGUAGE plpgsql",
            params=None,  # the % is PL/pgSQL's placeholder, not the driver's
        )
        for table in TABLES:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION vetpacs_append_only()"
            )
    elif vendor == "sqlite":
        for table in TABLES:
            for event in ("UPDATE", "DELETE"):
                schema_editor.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'append-only table {table}'); END"
                )


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        elif vendor == "sqlite":
            for event in ("update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{event}")


class Migration(migrations.Migration):
    dependencies = [("esign", "0001_initial")]
    operations = [migrations.RunPython(create_triggers, drop_triggers)]
