"""The decision receipt: one logged row as a PDF/A-3b an affected person, a bank or an auditor
can keep. The inputs as logged, the output, the version with its card summary and approvals, the
explanation (reason codes, counterfactual), the human reviews, the seal with its inclusion proof
(checked here against the root the audit trail recorded) and the signed checkpoint that covers
it, and a paragraph in plain language. Generating one is recorded with the PDF's SHA-256."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from compliance import reports
from compliance.checkpoints import public_key
from compliance.errors import ReportError
from core import audit
from core.actors import Actor
from core.canonical import ApiJSONEncoder
from core.checkpoints import CheckpointError, open_checkpoint, read_log
from core.models import AuditEvent
from governance import overlays
from governance.models import Decision, DecisionKind
from serving import contest, decisions, merkle, personal, seals
from serving.errors import ServingError
from serving.log import record_leaf
from serving.models import Contestation, DecisionReview, Disposition, PredictionLog, PredictionSeal, ReviewAction

CARD_SUMMARY = ("intended_use", "out_of_scope_uses", "caveats_and_recommendations")


def verified_proof(record: PredictionLog) -> dict[str, Any] | None:
    """The record's inclusion proof, with the leaf recomputed from the record's own data and
    the path checked against the root its seal's audit event recorded."""
    proof = seals.inclusion_proof(record)
    if proof is None:
        return None
    leaf = record_leaf(record)
    event = AuditEvent.objects.filter(seq=int(str(proof["audit_event_seq"]))).first()
    chained_root = (event.data or {}).get("root") if event is not None else None
    path = [bytes.fromhex(h) for h in proof["audit_path"]]  # type: ignore[attr-defined]  # (a dict of objects)
    ok = (
        chained_root == proof["root"]
        and leaf.hex() == proof["leaf_hash"]
        and merkle.verify_inclusion(
            int(str(proof["leaf_index"])),
            int(str(proof["tree_size"])),
            leaf,
            path,
            bytes.fromhex(str(proof["root"])),
        )
    )
    return {**proof, "recomputed_leaf": leaf.hex(), "chained_root": chained_root, "verified": ok}


def covering_checkpoint(seal: PredictionSeal | None) -> dict[str, Any] | None:
    """The first signed checkpoint whose chain head already holds the seal's audit event."""
    if seal is None or seal.audit_seq is None:
        return None
    try:
        key = public_key().public_key
    except CheckpointError:
        return None
    for logged in read_log(Path(settings.CHECKPOINT_DIR)):
        try:
            checkpoint = open_checkpoint(logged.note, key)
        except CheckpointError:
            continue
        if checkpoint.seq >= seal.audit_seq:
            head = AuditEvent.objects.filter(seq=checkpoint.seq).values_list("hash", flat=True).first()
            return {
                "where": logged.where,
                "note": logged.note,
                "seq": checkpoint.seq,
                "head_hash": checkpoint.head_hash,
                "time": checkpoint.time,
                "signature_valid": True,
                "chain_agrees": head == checkpoint.head_hash,
            }
    return None


def _plain_language(version: Any, data: dict[str, Any], reviews: list[DecisionReview], key: str) -> str:
    subject = f"application {key}" if key else "this request"
    decision = data.get("decision")
    final = reviews[-1].final_decision if reviews else decision
    parts = [
        f"This receipt records the automated decision on {subject}, made on "
        f"{data.get('_when')} by the model {version.registered_model.title or version.registered_model.name} "
        f"(version {version.version}), which named people had approved before it was used."
    ]
    if data.get("erased"):
        parts.append(
            "Its inputs were erased (at the person's request or at the end of the retention period), so the reasons "
            "for the outcome can no longer be given."
        )
    elif data.get("adverse"):
        reasons = [c["text"].rstrip(". ") for c in data.get("reason_codes", [])]
        if reasons:
            parts.append("The main reasons for the outcome were: " + "; ".join(reasons) + ".")
        changes = (data.get("counterfactual") or {}).get("changes") or []
        if changes:
            described = []
            for c in changes:
                if isinstance(c["proposed"], list):
                    described.append(f"{c['feature'].replace('_', ' ')} being {' or '.join(map(str, c['proposed']))}")
                else:
                    described.append(f"{c['feature'].replace('_', ' ')} being {c['proposed']:g}")
            parts.append("The outcome would have been different with, for example, " + ", or ".join(described) + ".")
    else:
        parts.append("The outcome was the favourable one.")
    if reviews:
        last = reviews[-1]
        verb = "confirmed" if last.action == ReviewAction.CONFIRMED else "changed"
        parts.append(f"A person reviewed the decision and {verb} it (final decision: {final}).")
    else:
        parts.append("No person has reviewed this decision yet; you may ask for a human review.")
    return " ".join(parts)


def receipt_context(
    record: PredictionLog, row: int, *, actor: Actor, api_key: Any = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    version = record.version
    if version is None or record.outcome != Disposition.OK:
        raise ReportError("Only an answered prediction has a receipt.", status=409)
    try:
        explanation = decisions.explanation_of(record, row, actor=actor, api_key=api_key)
        data, explanation_sha256 = explanation.payload, explanation.sha256
    except ServingError as exc:
        if exc.code != "inputs_erased":
            raise
        data = {"erased": True, "method": "", "reason_codes": [], "counterfactual": {}, "contributions": {}}
        explanation_sha256 = ""
    reviews = list(DecisionReview.objects.filter(record=record, row=row).order_by("seq"))
    # the person's contestations and their answers (docs/design.md, "Human oversight and contestation")
    contestations = [
        contest.case_data(c)
        for c in Contestation.objects.filter(record=record, row=row).select_related("record", "answer__review")
    ]
    approvals = list(
        Decision.objects.filter(
            version=version, kind__in=[DecisionKind.APPROVE, DecisionKind.DEPLOY], created_at__lte=record.created_at
        ).order_by("created_at")
    )
    outputs = record.outputs
    probabilities = outputs.get("probabilities")
    revealed, keys = personal.reveal_record(record)
    key = keys[row] if row < len(keys) else ""
    proof = verified_proof(record)
    checkpoint = covering_checkpoint(record.seal)
    inputs = revealed[row]
    card = version.card
    # as of the newest of its own inputs (no generation time: the same decision, reviews and proof
    # give the same bytes; who downloaded it when is the audit event's)
    moments = [record.created_at, *(r.created_at for r in reviews)]
    if record.seal is not None:
        moments.append(record.seal.created_at)
    if checkpoint is not None and isinstance(checkpoint.get("time"), datetime):
        moments.append(checkpoint["time"])
    # the model's limitations and overlays in force when the decision was made
    in_force = list(overlays.in_force(version.registered_model_id, at=record.created_at))
    context = {
        "title": f"Decision receipt {record.public_id}.{row}",
        "record": record,
        "row": row,
        "prediction_id": f"{record.public_id}.{row}",
        "business_key": key,
        "v": version,
        "inputs": [(name, inputs.get(name)) for name in version.feature_names],
        "decision": outputs["predictions"][row],
        "probabilities": list(zip(outputs.get("classes") or [], probabilities[row], strict=False))
        if probabilities
        else [],
        "card": [(s["title"], s["text"]) for s in card.sections() if s["name"] in CARD_SUMMARY],
        "approvals": approvals,
        "approvers": [d for d in approvals if d.kind == DecisionKind.APPROVE],
        "explanation": data,
        "explanation_sha256": explanation_sha256,
        "contributions": sorted(data["contributions"].items(), key=lambda kv: kv[1]),
        "reviews": reviews,
        "contestations": contestations,
        "overlays": in_force,
        "proof": proof,
        "checkpoint": checkpoint,
        "plain": _plain_language(version, {**data, "_when": f"{record.created_at:%Y-%m-%d %H:%M} UTC"}, reviews, key),
        "as_of": max(moments),
    }
    evidence = {
        "prediction_id": context["prediction_id"],
        "business_key": key,
        "record": {
            "id": str(record.public_id),
            "created_at": record.created_at,
            "model": record.model_name,
            "version": record.version_number,
            "inputs": inputs,
            "outputs": {k: v[row] for k, v in outputs.items() if k != "classes" and isinstance(v, list)},
            "classes": outputs.get("classes"),
            "leaf_hash": record.leaf_hash,
        },
        "artifact_sha256": version.artifact_sha256,
        "approvals": [
            {"by": d.actor_username, "at": d.created_at, "kind": d.kind, "justification": d.justification}
            for d in approvals
        ],
        "explanation": data,
        "explanation_sha256": explanation_sha256,
        "reviews": [decisions.review_data(r) for r in reviews],
        "contestations": contestations,
        "overlays": [overlays.overlay_data(o, at=record.created_at) for o in in_force],
        "inclusion_proof": proof,
        "checkpoint": checkpoint,
    }
    return context, evidence


def generate_receipt(record: PredictionLog, row: int, *, actor: Actor, api_key: Any = None) -> reports.Report:
    """Render the receipt of one decision and record its SHA-256 in the audit trail; only for
    those who may read the decision (serving.decisions.read_rule)."""
    decisions.require_read(record, actor=actor, api_key=api_key)
    context, evidence = receipt_context(record, row, actor=actor, api_key=api_key)
    blob = json.dumps(evidence, cls=ApiJSONEncoder, sort_keys=True, indent=1).encode()
    try:
        report = reports.render_report(
            "compliance/reports/receipt.html", context, evidence=blob, moment=context["as_of"]
        )
    except reports.RenderError as exc:
        raise ReportError(f"The receipt could not be rendered: {exc}", status=503) from None
    with transaction.atomic():
        audit.record(
            audit.REPORT_GENERATED,
            actor=actor,
            target=record,
            data={
                "kind": "decision_receipt",
                "prediction_id": context["prediction_id"],
                "sha256": report.sha256,
                "evidence_sha256": report.evidence_sha256,
                "bytes": len(report.pdf),
            },
        )
    return report
