from django.urls import path

from example_project.demo import framework_views, views

app_name = "demo"

urlpatterns = [
    path("", views.home, name="home"),
    path("blast/", views.blast, name="blast"),
    path("blast/<uuid:batch_id>/", views.blast_batch, name="blast-batch"),
    path("blast/<uuid:batch_id>/notices/", views.blast_notices, name="blast-notices"),
    path("export/<uuid:job_id>/download/", views.export_download, name="export-download"),
    path("recurring/", views.recurring, name="recurring"),
    path("recurring/runs/", views.recurring_runs, name="recurring-runs"),
    path("django-task/", framework_views.django_task, name="django-task"),
    path("<slug:slug>/", views.use_case, name="use-case"),
    path("<slug:slug>/<uuid:job_id>/", views.job, name="job"),
]
