"""Pages of the example site: a home page, one page per use case, a job's page."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from django_jobprogress.models import JobRecord
from example_project.demo import tasks
from example_project.demo.use_cases import BY_TASK_NAME, USE_CASES

RECENT = 10


class StartForm(forms.Form):
    """How many items the job works on (files, recipients), within the case's bounds."""

    def __init__(self, *args, case, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["count"] = forms.IntegerField(
            label=case.count_label,
            initial=case.count_default,
            min_value=1,
            max_value=case.count_max,
        )


def _case(slug):
    case = USE_CASES.get(slug)
    if case is None:
        raise Http404("No such use case.")
    return case


def _recent(user, case=None, exclude=None):
    jobs = JobRecord.objects.filter(owner=user)
    if case is not None:
        jobs = jobs.filter(task_name=case.task_name)
    if exclude is not None:
        jobs = jobs.exclude(pk=exclude.pk)
    return [(job, BY_TASK_NAME.get(job.task_name)) for job in jobs[:RECENT]]


@login_required
@require_GET
def home(request):
    return render(
        request,
        "demo/home.html",
        {"use_cases": USE_CASES.values(), "recent": _recent(request.user)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def use_case(request, slug):
    """Describe the use case; a POST starts its job and shows the job's page."""
    case = _case(slug)
    form = StartForm(request.POST or None, case=case) if case.count_label else None
    if request.method == "POST" and (form is None or form.is_valid()):
        count = form.cleaned_data["count"] if form is not None else 0
        job = case.enqueue(request.user, count)
        return redirect("demo:job", slug=case.slug, job_id=job.pk)
    return render(
        request,
        "demo/use_case.html",
        {"case": case, "form": form, "recent": _recent(request.user, case)},
        status=400 if request.method == "POST" else 200,
    )


@login_required
@require_GET
def job(request, slug, job_id):
    """One run of a use case with its live bar (only its owner sees it)."""
    case = _case(slug)
    record = get_object_or_404(JobRecord, pk=job_id, owner=request.user, task_name=case.task_name)
    form = StartForm(case=case) if case.count_label else None
    return render(
        request,
        "demo/use_case.html",
        {
            "case": case,
            "form": form,
            "job": record,
            "recent": _recent(request.user, case, exclude=record),
        },
    )


@login_required
@require_GET
def export_download(request, job_id):
    """The archive of a completed zip export, for the user who started it."""
    record = get_object_or_404(
        JobRecord,
        pk=job_id,
        owner=request.user,
        task_name=tasks.ZipExport.get_task_name(),
        status=JobRecord.Status.COMPLETED,
    )
    names = record.args[0] if record.args else []
    response = HttpResponse(tasks.build_export(names), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="export-{record.pk}.zip"'
    return response
