"""JSON endpoints: the snapshot and the cancel button of a job or a batch.

Anything the requester may not see is answered 404, never 403, so ids cannot be probed.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from django_jobprogress import access
from django_jobprogress.models import Batch, JobRecord


def _token(request: HttpRequest) -> str | None:
    return request.GET.get("token") or request.POST.get("token")


def _visible(request: HttpRequest, model: Any, pk: UUID) -> Any:
    obj = model.objects.filter(pk=pk).first()
    user = getattr(request, "user", None)  # no AuthenticationMiddleware: tokens only
    if obj is None or not access.can_view(user, obj, _token(request)):
        raise Http404("Not found.")
    return obj


def _detail(request: HttpRequest, model: Any, pk: UUID) -> JsonResponse:
    return JsonResponse(_visible(request, model, pk).snapshot())


def _cancel(request: HttpRequest, model: Any, pk: UUID) -> JsonResponse:
    """200 when the cancel took effect or is pending, 409 when it is refused."""
    obj = _visible(request, model, pk)
    user = getattr(request, "user", None)
    if not access.can_cancel(user, obj, _token(request)):
        return JsonResponse({"cancelled": False, "reason": "not allowed"}, status=403)
    cancelled = obj.request_cancel(by=user)
    obj.refresh_from_db()
    if cancelled:
        return JsonResponse({"cancelled": True, "snapshot": obj.snapshot()})
    reason = "already finished" if obj.is_finished else "not cancellable at this point"
    return JsonResponse(
        {"cancelled": False, "reason": reason, "snapshot": obj.snapshot()}, status=409
    )


@never_cache
@require_GET
def job_detail(request: HttpRequest, job_id: UUID) -> JsonResponse:
    return _detail(request, JobRecord, job_id)


@never_cache
@require_POST
def job_cancel(request: HttpRequest, job_id: UUID) -> JsonResponse:
    return _cancel(request, JobRecord, job_id)


@never_cache
@require_GET
def batch_detail(request: HttpRequest, batch_id: UUID) -> JsonResponse:
    return _detail(request, Batch, batch_id)


@never_cache
@require_POST
def batch_cancel(request: HttpRequest, batch_id: UUID) -> JsonResponse:
    return _cancel(request, Batch, batch_id)
