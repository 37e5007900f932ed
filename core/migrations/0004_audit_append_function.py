"""On PostgreSQL the application appends audit events through one function, owned by the role that
migrates (SECURITY DEFINER): core_audit_append takes the chain head's lock, refuses an event whose
seq and prev_hash are not the head's next, writes it with the seq and prev_hash it computed from
the head, and returns its id. core_audit_head takes the same lock and returns the head, so the
application can hash and MAC the event (under AUDIT_MAC_KEY, which the database never sees) before
appending it. The runtime role gets EXECUTE on both (compliance.db_roles) and no INSERT on the
audit trail, nor UPDATE on its head (the insert's trigger moves the head: core/migrations/0003)."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION core_audit_head(OUT head_seq bigint, OUT head_hash varchar)
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    SELECT h.seq, h.hash INTO head_seq, head_hash FROM governance_auditchainhead h WHERE h.id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO governance_auditchainhead (id, seq, hash) VALUES (1, 0, repeat('0', 64))
            ON CONFLICT (id) DO NOTHING;
        SELECT h.seq, h.hash INTO head_seq, head_hash FROM governance_auditchainhead h WHERE h.id = 1 FOR UPDATE;
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION core_audit_append(event jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    head record;
    new_id bigint;
BEGIN
    SELECT * INTO head FROM core_audit_head();
    IF (event->>'seq')::bigint IS DISTINCT FROM head.head_seq + 1
        OR event->>'prev_hash' IS DISTINCT FROM head.head_hash THEN
        RAISE EXCEPTION USING
            MESSAGE = 'governance_auditevent: event #' || coalesce(event->>'seq', '?')
                || ' does not follow the chain head (#' || head.head_seq || ', ' || head.head_hash || '): refused',
            ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO governance_auditevent (
        seq, created_at, actor_id, actor_username, action, target_type, target_id, target_repr,
        data, prev_hash, hash, mac
    ) VALUES (
        head.head_seq + 1, (event->>'created_at')::timestamptz, (event->>'actor_id')::bigint,
        event->>'actor_username', event->>'action', event->>'target_type', event->>'target_id',
        event->>'target_repr', event->'data', head.head_hash, event->>'hash', event->>'mac'
    ) RETURNING id INTO new_id;
    RETURN new_id;
END;
$$;

REVOKE ALL ON FUNCTION core_audit_head() FROM PUBLIC;
REVOKE ALL ON FUNCTION core_audit_append(jsonb) FROM PUBLIC;
"""

BACKWARD = """
DROP FUNCTION IF EXISTS core_audit_append(jsonb);
DROP FUNCTION IF EXISTS core_audit_head();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("core", "0003_audit_event_mac")]
    operations = [migrations.RunPython(forward, backward)]
