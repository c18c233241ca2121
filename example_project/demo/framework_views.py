"""The "Django's task framework" page: start a ``django.tasks`` task and follow it."""

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from django_jobprogress.models import JobRecord

TASK_NAME = "example_project.demo.framework_tasks.count_words"


class CountForm(forms.Form):
    documents = forms.IntegerField(label="Documents", initial=20, min_value=1, max_value=200)


def _framework_task():
    """The task, or None where neither django.tasks nor the backport is installed."""
    try:
        from example_project.demo.framework_tasks import count_words
    except ImportError:
        return None
    return count_words


@login_required
@require_http_methods(["GET", "POST"])
def django_task(request):
    """A POST enqueues ``count_words`` (owned by the user); ``?job=<id>`` shows its bar
    and the ``TaskResult`` that ``get_result()`` reads back."""
    count_words = _framework_task()
    form = CountForm(request.POST or None)
    if count_words is not None and request.method == "POST" and form.is_valid():
        enqueue = count_words.using_job(owner=request.user).enqueue
        result = enqueue(form.cleaned_data["documents"], pace=settings.DEMO_PACE)
        return redirect(f"{request.path}?job={result.id}")
    context = {"form": form, "available": count_words is not None}
    job_id = request.GET.get("job")
    if count_words is not None and job_id:
        record = get_object_or_404(JobRecord, pk=job_id, owner=request.user, task_name=TASK_NAME)
        context.update(job=record, result=count_words.get_result(str(record.pk)))
    return render(request, "demo/django_task.html", context)
