"""JSON endpoints: a job's snapshot and its cancel button.

A job the requester may not see is answered 404, never 403, so ids cannot be probed.
"""

from __future__ import annotations

from uuid import UUID

from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from django_jobprogress import access
from django_jobprogress.models import JobRecord


def _token(request: HttpRequest) -> str | None:
    return request.GET.get("token") or request.POST.get("token")


def _visible_job(request: HttpRequest, job_id: UUID) -> JobRecord:
    record = JobRecord.objects.filter(pk=job_id).first()
    if record is None or not access.can_view(request.user, record, _token(request)):
        raise Http404("No such job.")
    return record


@never_cache
@require_GET
def job_detail(request: HttpRequest, job_id: UUID) -> JsonResponse:
    return JsonResponse(_visible_job(request, job_id).snapshot())


@never_cache
@require_POST
def job_cancel(request: HttpRequest, job_id: UUID) -> JsonResponse:
    """200 when the cancel took effect or is pending, 409 when the job refuses it."""
    record = _visible_job(request, job_id)
    if not access.can_cancel(request.user, record, _token(request)):
        return JsonResponse({"cancelled": False, "reason": "not allowed"}, status=403)
    if record.request_cancel(by=request.user):
        return JsonResponse({"cancelled": True, "job": record.snapshot()})
    record.refresh_from_db()
    reason = "already finished" if record.is_finished else "not cancellable at this point"
    return JsonResponse(
        {"cancelled": False, "reason": reason, "job": record.snapshot()}, status=409
    )
