"""Every audit event carries an HMAC-SHA256 of its hash under AUDIT_MAC_KEY, a key the database
never sees (core.audit). Events written before this migration get theirs now, computed with the
key configured when it runs: their hashes do not change, so checkpoints signed before it still
hold, and an event whose hash was already wrong still fails as "altered".

On PostgreSQL the chain's order is kept by the database, whichever role writes:
- an INSERT into the audit trail locks the head row and is refused unless its seq is the head's
  plus one and its prev_hash the head's hash (and it carries a MAC); after it, the trigger moves
  the head to the new event itself, so the head always names the last event;
- the head row may only name the last event (or, with no event, sequence 0 and the genesis hash),
  and still only moves forward; it is never deleted.
The trigger functions are SECURITY DEFINER, owned by the role that migrates: they work the same
whatever the runtime role is granted on the head row."""

from django.db import migrations, models

GENESIS = "0" * 64

FORWARD = """
CREATE OR REPLACE FUNCTION core_audit_event_follows_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    head_seq bigint;
    head_hash varchar(64);
BEGIN
    SELECT seq, hash INTO head_seq, head_hash FROM governance_auditchainhead WHERE id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO governance_auditchainhead (id, seq, hash) VALUES (1, 0, repeat('0', 64))
            ON CONFLICT (id) DO NOTHING;
        SELECT seq, hash INTO head_seq, head_hash FROM governance_auditchainhead WHERE id = 1 FOR UPDATE;
    END IF;
    IF NEW.seq IS DISTINCT FROM head_seq + 1 OR NEW.prev_hash IS DISTINCT FROM head_hash THEN
        RAISE EXCEPTION USING
            MESSAGE = 'governance_auditevent: event #' || NEW.seq || ' does not follow the chain head (#'
                || head_seq || ', ' || head_hash || '): INSERT refused',
            ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.mac IS NULL OR NEW.mac !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION USING
            MESSAGE = 'governance_auditevent: event #' || NEW.seq || ' carries no MAC: INSERT refused',
            ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION core_audit_event_moves_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE governance_auditchainhead SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER governance_auditevent_follows_head
    BEFORE INSERT ON governance_auditevent
    FOR EACH ROW EXECUTE FUNCTION core_audit_event_follows_head();
CREATE TRIGGER governance_auditevent_moves_head
    AFTER INSERT ON governance_auditevent
    FOR EACH ROW EXECUTE FUNCTION core_audit_event_moves_head();

CREATE OR REPLACE FUNCTION core_chain_head_forward_only() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND NEW.seq < OLD.seq) THEN
        RAISE EXCEPTION USING
            MESSAGE = 'governance_auditchainhead only moves forward: ' || TG_OP || ' refused',
            ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.id <> 1 THEN
        RAISE EXCEPTION USING
            MESSAGE = 'governance_auditchainhead has one row, id 1: ' || TG_OP || ' refused',
            ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.seq = 0 THEN
        IF NEW.hash <> repeat('0', 64) OR EXISTS (SELECT 1 FROM governance_auditevent) THEN
            RAISE EXCEPTION USING
                MESSAGE = 'governance_auditchainhead names the last event: ' || TG_OP || ' to #0 refused',
                ERRCODE = 'insufficient_privilege';
        END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM governance_auditevent WHERE seq = NEW.seq AND hash = NEW.hash)
        OR EXISTS (SELECT 1 FROM governance_auditevent WHERE seq > NEW.seq) THEN
        RAISE EXCEPTION USING
            MESSAGE = 'governance_auditchainhead names the last event: ' || TG_OP || ' to #' || NEW.seq
                || ' ' || NEW.hash || ' refused',
            ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS governance_auditchainhead_forward_only ON governance_auditchainhead;
CREATE TRIGGER governance_auditchainhead_forward_only
    BEFORE INSERT OR UPDATE OR DELETE ON governance_auditchainhead
    FOR EACH ROW EXECUTE FUNCTION core_chain_head_forward_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS governance_auditevent_follows_head ON governance_auditevent;
DROP TRIGGER IF EXISTS governance_auditevent_moves_head ON governance_auditevent;
DROP FUNCTION IF EXISTS core_audit_event_follows_head();
DROP FUNCTION IF EXISTS core_audit_event_moves_head();
DROP TRIGGER IF EXISTS governance_auditchainhead_forward_only ON governance_auditchainhead;
CREATE OR REPLACE FUNCTION core_chain_head_forward_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.seq < OLD.seq THEN
        RAISE EXCEPTION USING
            MESSAGE = 'governance_auditchainhead only moves forward: ' || TG_OP || ' refused',
            ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql SECURITY INVOKER;
CREATE TRIGGER governance_auditchainhead_forward_only
    BEFORE UPDATE OR DELETE ON governance_auditchainhead
    FOR EACH ROW EXECUTE FUNCTION core_chain_head_forward_only();
"""


def mac_existing_events(apps, schema_editor):
    """The MAC of every event written before this migration, under the configured key (only asked
    for when there is an event), and a head row for a chain that has events but none."""
    from core.audit import _mac_key, compute_mac

    AuditEvent = apps.get_model("core", "AuditEvent")
    AuditChainHead = apps.get_model("core", "AuditChainHead")
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    if last is None:
        return
    key = _mac_key()
    postgresql = schema_editor.connection.vendor == "postgresql"
    with schema_editor.connection.cursor() as cursor:
        if postgresql:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE governance_auditevent DISABLE TRIGGER governance_auditevent_no_update_delete")
        batch = []
        for pk, event_hash in AuditEvent.objects.order_by("seq").values_list("pk", "hash").iterator(chunk_size=2000):
            batch.append(AuditEvent(pk=pk, mac=compute_mac(event_hash, key)))
            if len(batch) == 2000:
                AuditEvent.objects.bulk_update(batch, ["mac"])
                batch = []
        AuditEvent.objects.bulk_update(batch, ["mac"])
        if postgresql:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE governance_auditevent ENABLE TRIGGER governance_auditevent_no_update_delete")
    AuditChainHead.objects.get_or_create(pk=1, defaults={"seq": last[0], "hash": last[1]})


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_chain_head_moves_forward"),
        # (the evidence baseline appends an event of its own: it gets its MAC here too)
        ("compliance", "0001_evidence_baseline"),
    ]
    operations = [
        migrations.AddField(model_name="auditevent", name="mac", field=models.CharField(default="", max_length=64)),
        migrations.RunPython(mac_existing_events, migrations.RunPython.noop),
        migrations.RunPython(forward, backward),
    ]
