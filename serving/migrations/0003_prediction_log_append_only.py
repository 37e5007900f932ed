"""On PostgreSQL the prediction log refuses DELETE and TRUNCATE, and any UPDATE except
attaching a not-yet-sealed record to its seal."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION serving_predictionlog_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.seal_id IS NULL AND NEW.seal_id IS NOT NULL
       AND (to_jsonb(OLD) - 'seal_id') = (to_jsonb(NEW) - 'seal_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING
        MESSAGE = 'serving_predictionlog is append-only: ' || TG_OP || ' refused',
        ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER serving_predictionlog_guard_rows
    BEFORE UPDATE OR DELETE ON serving_predictionlog
    FOR EACH ROW EXECUTE FUNCTION serving_predictionlog_guard();
CREATE TRIGGER serving_predictionlog_no_truncate
    BEFORE TRUNCATE ON serving_predictionlog
    FOR EACH STATEMENT EXECUTE FUNCTION serving_predictionlog_guard();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS serving_predictionlog_guard_rows ON serving_predictionlog;
DROP TRIGGER IF EXISTS serving_predictionlog_no_truncate ON serving_predictionlog;
DROP FUNCTION IF EXISTS serving_predictionlog_guard();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("serving", "0002_prediction_log")]
    operations = [migrations.RunPython(forward, backward)]
