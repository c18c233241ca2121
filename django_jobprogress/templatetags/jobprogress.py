"""``{% load jobprogress %}{% progress_bar job %}``: a live, accessible progress bar."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django import template
from django.urls import NoReverseMatch, reverse

from django_jobprogress import access
from django_jobprogress.models import JobRecord

register = template.Library()

SIZES = ("sm", "md", "lg")


def _record(job: Any) -> JobRecord:
    if isinstance(job, JobRecord):
        return job
    try:
        return JobRecord.objects.get(pk=UUID(str(job)))
    except (ValueError, JobRecord.DoesNotExist) as exc:
        raise template.TemplateSyntaxError(f"progress_bar: no job with id {job!r}") from exc


def _url(name: str, pk: Any) -> str:
    try:
        return reverse(name, args=[pk])
    except NoReverseMatch:  # the JSON views are not included: no polling, no cancel
        return ""


@register.inclusion_tag("django_jobprogress/progress_bar.html", takes_context=True)
def progress_bar(
    context: template.Context,
    job: Any,
    size: str = "md",
    label: str = "",
    token: str = "",
) -> dict[str, Any]:
    """Render ``job`` (a JobRecord or its id) as a bar that follows the job live.

    ``size`` is sm, md or lg; ``label`` names the bar for screen readers and
    sighted users alike; ``token`` (from ``record.access_token()``) lets a
    viewer without a session follow the job.
    """
    if size not in SIZES:
        raise template.TemplateSyntaxError(
            f"progress_bar: size must be one of {', '.join(SIZES)}, got {size!r}"
        )
    record = _record(job)
    request = context.get("request")
    user = getattr(request, "user", None)
    snapshot = record.snapshot()
    return {
        "snapshot": snapshot,
        "percent": int(snapshot["progress"] * 100),
        "finished": record.is_finished,
        "size": size,
        "label": label or record.task_name.rsplit(".", 1)[-1],
        "token": token,
        "can_cancel": access.can_cancel(user, record, token or None),
        "ws_path": f"/ws/jobs/{record.pk}/",
        "json_url": _url("django_jobprogress:job-detail", record.pk),
        "cancel_url": _url("django_jobprogress:job-cancel", record.pk),
        "csrf_token": context.get("csrf_token", ""),
    }
