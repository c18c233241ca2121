"""URLs of ``bench/admin.py``: the admin, and the JSON views its live bars poll."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("jp/", include("django_jobprogress.urls")),
]
