"""JSON endpoints: the snapshot and the cancel button of a job or a batch.

Every answer of these views is JSON, errors included. Anything the requester may not see is
answered 404, never 403, with the same body as an unknown id, so ids cannot be
probed. A requester who may cancel may POST to the cancel endpoint (and reads
the snapshot in its answer) even without the right to see the job.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from uuid import UUID

from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.cache import never_cache

from django_jobprogress import access
from django_jobprogress.models import Batch, JobRecord

View = Callable[..., JsonResponse]


def _methods(*allowed: str) -> Callable[[View], View]:
    """Like ``require_http_methods``, but the 405 says why in JSON, and a form body
    that cannot be parsed is a JSON 400 rather than Django's HTML page."""

    def decorator(view: View) -> View:
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            if request.method not in allowed:
                response = JsonResponse(
                    {"error": "method not allowed", "allowed": list(allowed)}, status=405
                )
                response["Allow"] = ", ".join(allowed)
                return response
            try:
                return view(request, *args, **kwargs)
            except MultiPartParserError:  # raised by request.POST, read for the token
                return JsonResponse({"error": "bad request"}, status=400)

        return guarded

    return decorator


def _not_found() -> JsonResponse:
    return JsonResponse({"error": "not found"}, status=404)


def _user(request: HttpRequest) -> Any:
    return getattr(request, "user", None)  # no AuthenticationMiddleware: tokens only


def _token(request: HttpRequest) -> str | None:
    return request.GET.get("token") or request.POST.get("token")


def _detail(request: HttpRequest, model: Any, pk: UUID) -> JsonResponse:
    obj = model.objects.filter(pk=pk).first()
    if obj is None or not access.can_view(_user(request), obj, _token(request)):
        return _not_found()
    return JsonResponse(obj.snapshot())


def _cancel(request: HttpRequest, model: Any, pk: UUID) -> JsonResponse:
    """200 when the cancel took effect or is pending, 409 when it is refused, 403
    when the requester may see the object but not cancel it."""
    obj = model.objects.filter(pk=pk).first()
    user, token = _user(request), _token(request)
    if obj is None:
        return _not_found()
    if not access.can_cancel(user, obj, token):
        if access.can_view(user, obj, token):
            return JsonResponse({"cancelled": False, "reason": "not allowed"}, status=403)
        return _not_found()
    cancelled = obj.request_cancel(by=user)
    obj.refresh_from_db()
    if cancelled:
        return JsonResponse({"cancelled": True, "snapshot": obj.snapshot()})
    reason = "already finished" if obj.is_finished else "not cancellable at this point"
    return JsonResponse(
        {"cancelled": False, "reason": reason, "snapshot": obj.snapshot()}, status=409
    )


def _endpoint(method: str, answer: Callable[..., JsonResponse], model: Any, id_name: str) -> View:
    """The view answering ``method`` for one object of ``model``, named by the URL's
    ``id_name`` (``job_id``, ``batch_id``)."""

    @never_cache
    @_methods(method)
    def view(request: HttpRequest, **ids: UUID) -> JsonResponse:
        return answer(request, model, ids[id_name])

    return view


job_detail = _endpoint("GET", _detail, JobRecord, "job_id")
job_cancel = _endpoint("POST", _cancel, JobRecord, "job_id")
batch_detail = _endpoint("GET", _detail, Batch, "batch_id")
batch_cancel = _endpoint("POST", _cancel, Batch, "batch_id")


@never_cache
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any other id under the prefix ("not-a-uuid"): the same answer as an unknown one."""
    return _not_found()
