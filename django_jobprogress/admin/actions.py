"""Cancel and retry jobs, from the list's actions and from a job's buttons:
permission-checked, bounded, and written to the admin history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import reverse
from django.utils import formats
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from django_jobprogress.admin.base import ConsoleAdmin
from django_jobprogress.admin.display import job_label
from django_jobprogress.exceptions import (
    DuplicateJob,
    JobProgressConfigurationError,
    NotRetryable,
)
from django_jobprogress.models import JobRecord

if TYPE_CHECKING:  # Django's admin classes take type arguments only in the stubs
    JobAdminBase = admin.ModelAdmin[JobRecord]
else:
    JobAdminBase = admin.ModelAdmin

#: Jobs one action handles ("select all" on a long list does the first ones).
ACTION_LIMIT = 1000
RETRYABLE = (JobRecord.Status.FAILED, JobRecord.Status.CANCELLED)
#: Refusals a message spells out; the rest are counted.
REFUSALS_SHOWN = 5


class JobActions(ConsoleAdmin, JobAdminBase):
    """The job admin's cancel and retry: the actions, the buttons' views, and the
    one-job steps both use."""

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("django_jobprogress.retry_jobrecord"))

    def has_delete_permission(self, request: HttpRequest, obj: JobRecord | None = None) -> bool:
        """Never for an unfinished job: cancel it first."""
        if obj is not None and not obj.is_finished:
            return False
        return super().has_delete_permission(request, obj)

    def change_url(self, pk: Any) -> str:
        name = f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_change"
        return reverse(name, args=[quote(pk)])

    # -- one job ------------------------------------------------------------------

    def cancel_one(self, request: HttpRequest, record: JobRecord) -> tuple[bool, str]:
        """Cancel ``record`` for the request's user; (done, what to tell them). A cancel
        that took effect is written to the admin history."""
        if record.request_cancel(by=request.user):
            if record.status == JobRecord.Status.CANCELLED:
                text = _("%(job)s cancelled.") % {"job": job_label(record)}
            else:
                text = _("%(job)s asked to stop; it stops at its next checkpoint.") % {
                    "job": job_label(record)
                }
            self.log_change(request, record, text)
            return True, text
        record.refresh_from_db(fields=["status", "progress", "cancellable", "cancel_threshold"])
        if record.is_finished:
            reason = _("it has already ended (%(status)s)") % {
                "status": record.get_status_display()
            }
        elif not record.cancellable:
            reason = _("its task cannot be cancelled")
        else:
            reason = _("it is past its cancel threshold (%(percent)d%%)") % {
                "percent": record.cancel_threshold * 100
            }
        return False, _("%(job)s was not cancelled: %(reason)s.") % {
            "job": job_label(record),
            "reason": reason,
        }

    def retry_one(self, request: HttpRequest, record: JobRecord) -> tuple[JobRecord | None, str]:
        """Retry ``record`` for the request's user; (the new job or None, what to tell
        them). A retry is written to the history of both jobs."""
        label = job_label(record)
        try:
            retried = record.retry(by=request.user)
        except NotRetryable:
            reason = _(
                "its status is “%(status)s”; only failed or cancelled jobs can be retried"
            ) % {"status": record.get_status_display()}
        except DuplicateJob as exc:
            reason = _("job %(other)s holds its key “%(key)s” and has not ended") % {
                "other": job_label(exc.existing),
                "key": record.key,
            }
        except JobProgressConfigurationError:
            reason = _("its task %(task)s cannot be loaded") % {"task": record.task_name}
        else:
            text = _("%(job)s retried as %(new)s.") % {"job": label, "new": job_label(retried)}
            self.log_change(request, record, text)
            self.log_addition(request, retried, _("Retry of %(job)s.") % {"job": label})
            return retried, text
        return None, _("%(job)s was not retried: %(reason)s.") % {"job": label, "reason": reason}

    # -- the list's actions ---------------------------------------------------------

    def _report(self, request: HttpRequest, done: str, refused: list[str], more: int) -> None:
        parts = [done] if done else []
        if refused:
            parts.append(" ".join(refused[:REFUSALS_SHOWN]))
            if len(refused) > REFUSALS_SHOWN:
                left = len(refused) - REFUSALS_SHOWN
                parts.append(_("(%(count)d more refused.)") % {"count": left})
        if more:
            parts.append(
                _("Only the first %(limit)s selected jobs were handled; run it again for the rest.")
                % {"limit": formats.number_format(ACTION_LIMIT, force_grouping=True)}
            )
        level = messages.WARNING if refused or more else messages.SUCCESS
        if not done:
            level = messages.ERROR
        self.message_user(request, " ".join(parts), level)

    def _selected(self, queryset: QuerySet[Any]) -> tuple[list[JobRecord], int]:
        """At most ``ACTION_LIMIT`` of the selected jobs, fully loaded; and whether
        more were selected ("select all" on a large list)."""
        records = list(queryset.defer(None)[: ACTION_LIMIT + 1])
        return records[:ACTION_LIMIT], int(len(records) > ACTION_LIMIT)

    @admin.action(description=gettext_lazy("Cancel selected jobs"), permissions=["cancel"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        records, more = self._selected(queryset)
        outcomes = [self.cancel_one(request, record) for record in records]
        cancelled = sum(done for done, _text in outcomes)
        refused = [text for done, text in outcomes if not done]
        done = ""
        if cancelled:
            done = ngettext(
                "%(count)d job cancelled or asked to stop.",
                "%(count)d jobs cancelled or asked to stop.",
                cancelled,
            ) % {"count": cancelled}
        self._report(request, done, refused, more)

    @admin.action(description=gettext_lazy("Retry selected jobs"), permissions=["retry"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        records, more = self._selected(queryset)
        outcomes = [self.retry_one(request, record) for record in records]
        retried = sum(new is not None for new, _text in outcomes)
        refused = [text for new, text in outcomes if new is None]
        done = ""
        if retried:
            done = ngettext("%(count)d job retried.", "%(count)d jobs retried.", retried) % {
                "count": retried
            }
        self._report(request, done, refused, more)

    # -- a job's buttons --------------------------------------------------------------

    def _button_target(
        self, request: HttpRequest, object_id: str, allowed: bool
    ) -> JobRecord | HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not allowed:
            raise PermissionDenied
        record = self.get_object(request, unquote(object_id))
        if record is None:
            text = _("There is no job with id “%(id)s”; perhaps it was deleted.")
            self.message_user(request, text % {"id": object_id}, messages.WARNING)
            name = f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}"
            return HttpResponseRedirect(reverse(f"{name}_changelist"))
        return record

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST from the Cancel button of a job's page."""
        record = self._button_target(request, object_id, self.has_cancel_permission(request))
        if isinstance(record, HttpResponse):
            return record
        done, text = self.cancel_one(request, record)
        self.message_user(request, text, messages.SUCCESS if done else messages.ERROR)
        return HttpResponseRedirect(self.change_url(record.pk))

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST from the Retry button of a job's page; shows the new job on success."""
        record = self._button_target(request, object_id, self.has_retry_permission(request))
        if isinstance(record, HttpResponse):
            return record
        retried, text = self.retry_one(request, record)
        self.message_user(request, text, messages.SUCCESS if retried else messages.ERROR)
        return HttpResponseRedirect(self.change_url((retried or record).pk))
