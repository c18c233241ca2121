from django.urls import path

from example_project.demo import views

app_name = "demo"

urlpatterns = [
    path("", views.home, name="home"),
    path("export/<uuid:job_id>/download/", views.export_download, name="export-download"),
    path("<slug:slug>/", views.use_case, name="use-case"),
    path("<slug:slug>/<uuid:job_id>/", views.job, name="job"),
]
