"""On PostgreSQL the audit chain's head row may only move forward: a trigger refuses an UPDATE
that lowers its sequence number (rewinding the chain to hide its tail) and any DELETE."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION core_chain_head_forward_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.seq < OLD.seq THEN
        RAISE EXCEPTION USING
            MESSAGE = 'governance_auditchainhead only moves forward: ' || TG_OP || ' refused',
            ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER governance_auditchainhead_forward_only
    BEFORE UPDATE OR DELETE ON governance_auditchainhead
    FOR EACH ROW EXECUTE FUNCTION core_chain_head_forward_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS governance_auditchainhead_forward_only ON governance_auditchainhead;
DROP FUNCTION IF EXISTS core_chain_head_forward_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
