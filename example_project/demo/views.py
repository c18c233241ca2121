"""Pages of the example site: a home page, one page per use case, a job's page,
the weekly email blast (a batch) with its page, and the recurring job's page."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from django_jobprogress.models import JobRecord
from example_project.demo import tasks, use_cases
from example_project.demo.models import Notice
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
    # Only the use cases' own jobs: not a blast's callback, which has its own page.
    jobs = JobRecord.objects.filter(owner=user, task_name__in=list(BY_TASK_NAME))
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


class BlastForm(forms.Form):
    count = forms.IntegerField(
        label="Recipients",
        initial=use_cases.BLAST_DEFAULT,
        min_value=1,
        max_value=use_cases.BLAST_MAX,
    )


def _blast_page(request, form, batch=None, status=200):
    blasts = use_cases.blasts(request.user)
    if batch is not None:
        blasts = blasts.exclude(pk=batch.pk)
    notices = Notice.objects.filter(batch_id=batch.pk).order_by("created_at") if batch else []
    return render(
        request,
        "demo/blast.html",
        {
            "source": use_cases.BLAST_SOURCE,
            "form": form,
            "batch": batch,
            "snapshot": batch.snapshot() if batch else None,
            "notices": notices,
            "recent_blasts": blasts[:RECENT],
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def blast(request):
    """Describe the weekly email blast; a POST sends it and shows its batch."""
    form = BlastForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        batch = use_cases.start_blast(request.user, form.cleaned_data["count"])
        return redirect("demo:blast-batch", batch_id=batch.pk)
    return _blast_page(request, form, status=400 if request.method == "POST" else 200)


@login_required
@require_GET
def blast_batch(request, batch_id):
    """One blast: its batch bar, its counters and the callback's notification
    (only its owner sees it)."""
    batch = get_object_or_404(use_cases.blasts(request.user), pk=batch_id)
    return _blast_page(request, BlastForm(), batch)


@never_cache
@login_required
@require_GET
def blast_notices(request, batch_id):
    """The notifications the blast's callback wrote, as JSON, for its owner."""
    batch = get_object_or_404(use_cases.blasts(request.user), pk=batch_id)
    notices = Notice.objects.filter(batch_id=batch.pk).order_by("created_at")
    return JsonResponse(
        {
            "batch": str(batch.pk),
            "status": batch.status,
            "notices": [
                {"text": notice.text, "created": notice.created_at.isoformat()}
                for notice in notices
            ],
        }
    )


@login_required
@require_GET
def recurring(request):
    """The recurring job: its schedule, its next slot and its last runs' live bars.
    Nothing starts it from here: the schedule does, while a cluster runs."""
    return render(
        request,
        "demo/recurring.html",
        {"source": use_cases.RECURRING_SOURCE, "recurring": use_cases.recurring()},
    )


@never_cache
@login_required
@require_GET
def recurring_runs(request):
    """The page's next-run line and runs list alone, for its script to pick up the
    runs started since the page was loaded."""
    return render(request, "demo/_recurring_runs.html", {"recurring": use_cases.recurring()})
