"""Evidence rows written before their writes carried content hashes get one baseline audit event
that records each of them as it stands at this migration (decisions, deployments, finished
checks, policies, outcomes, role memberships). From here on every write records its own."""

import json

from django.db import migrations
from django.utils import timezone

from core.audit import compute_hash, event_payload
from core.canonical import canonical_json
from core.evidence import content_hash

TABLES = [
    ("governance", "Decision", {}),
    ("governance", "Deployment", {}),
    ("governance", "CheckRun", {"status__in": ["passed", "failed", "error", "inconclusive"]}),
    ("governance", "Policy", {}),
    ("serving", "PredictionOutcome", {}),
]
ROLES = ("data-scientists", "risk-officers", "auditors")


def baseline(apps, schema_editor):
    items = []
    for app_label, name, which in TABLES:
        model = apps.get_model(app_label, name)
        names = [f.attname for f in model._meta.concrete_fields]
        for values in model.objects.filter(**which).order_by("pk").values(*names):
            items.append(
                {
                    "row": f"{app_label}.{name.lower()}:{values['id']}",
                    "fields": sorted(values),
                    "sha256": content_hash(values),
                }
            )
    Group = apps.get_model("auth", "Group")
    for role, user_id in Group.objects.filter(name__in=ROLES).values_list("name", "user__id"):
        if user_id is not None:
            values = {"user": user_id, "role": role, "member": True}
            items.append({"row": f"core.role:{user_id}:{role}", "fields": sorted(values), "sha256": content_hash(values)})
    if not items:
        return
    AuditEvent = apps.get_model("core", "AuditEvent")
    AuditChainHead = apps.get_model("core", "AuditChainHead")
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
    event = AuditEvent(
        seq=head.seq + 1,
        created_at=timezone.now(),
        actor_id=None,
        actor_username="system",
        action="compliance.evidence.baselined",
        target_type="",
        target_id="",
        target_repr="",
        data=json.loads(canonical_json({"rows": len(items), "evidence": items})),
        prev_hash=head.hash,
    )
    event.hash = compute_hash(event.prev_hash, event_payload(event))
    event.save(force_insert=True)
    head.seq, head.hash = event.seq, event.hash
    head.save(update_fields=["seq", "hash"])


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("governance", "0010_decisions_bind_creator_and_tier"),
        ("serving", "0006_log_fewer_indexes"),
    ]
    operations = [migrations.RunPython(baseline, migrations.RunPython.noop)]
