"""The example site's ``django.tasks`` task, run by ``JobProgressBackend`` (``TASKS``
in the settings): a standard ``@task`` that reports progress through its context."""

import time

try:
    from django.tasks import task
except ImportError:  # Django < 6.0: the django-tasks backport
    from django_tasks import task


@task(takes_context=True)
def count_words(context, documents, pace=1.0):
    """Count the words of ``documents`` generated texts, one step each; cancellable
    at every step."""
    progress = context.progress
    progress.stage("counting")
    progress.total = documents
    words = 0
    for number in range(1, documents + 1):
        time.sleep(0.3 * pace)  # a real task would read the document from storage
        words += 100 + number % 37
        progress.increment()
        progress.message(f"document {number}: {words} words so far")
        context.checkpoint()
    return {"documents": documents, "words": words}
