"""A finding's own page, outside the admin: the owner reads it, comments and proposes closure;
risk officers comment and close it. Thin: governance.finding_work and governance.findings."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from core.errors import DomainError
from governance import finding_work, findings
from governance.models import Finding

SESSION_TYPED = "finding-typed"


@login_required
def finding_page(request: HttpRequest, finding_id: int) -> HttpResponse:
    finding = Finding.objects.select_related("version__registered_model", "owner").filter(pk=finding_id).first()
    if finding is None or not finding_work.may_read(finding, request.user):
        raise Http404
    if request.method == "POST":
        action = request.POST.get("action", "")
        text = request.POST.get("text", "")
        try:
            if action == "close":
                findings.close_finding(finding.pk, actor=request.user, justification=text)
                messages.success(request, f"Finding #{finding.pk} closed.")
            else:
                finding_work.owner_comment(
                    finding.pk, actor=request.user, text=text, proposes_closure=action == "propose_closure"
                )
                messages.success(
                    request,
                    "Closure proposed: the risk officers are asked to close it."
                    if action == "propose_closure"
                    else "Comment added.",
                )
        except DomainError as exc:
            messages.error(request, f"Refused: {exc.message}")
            request.session[SESSION_TYPED] = {"for": finding.pk, "text": text}  # what was typed is kept
        return redirect("finding", finding_id=finding.pk)
    typed = request.session.pop(SESSION_TYPED, None)
    proposals = finding_work.closure_proposals(finding)
    return render(
        request,
        "governance/finding.html",
        {
            "f": finding,
            "comments": [(c, c.pk in proposals) for c in finding.comments.all()],
            "may_comment": bool(finding_work.can_work_on(finding, request.user)),
            "close_rule": finding_work.can_close(finding, request.user),
            "is_owner": finding.owner_id == request.user.pk,
            "typed": typed.get("text", "") if isinstance(typed, dict) and typed.get("for") == finding.pk else "",
        },
    )
