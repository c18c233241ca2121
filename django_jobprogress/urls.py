from django.urls import path, re_path

from django_jobprogress import views

app_name = "django_jobprogress"

urlpatterns = [
    path("jobs/<uuid:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<uuid:job_id>/cancel/", views.job_cancel, name="job-cancel"),
    path("batches/<uuid:batch_id>/", views.batch_detail, name="batch-detail"),
    path("batches/<uuid:batch_id>/cancel/", views.batch_cancel, name="batch-cancel"),
    # A malformed id gets the JSON 404 of an unknown one, not the site's HTML page.
    re_path(r"^(?:jobs|batches)/[^/]+/(?:cancel/)?$", views.not_found),
]
