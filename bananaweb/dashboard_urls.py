"""The staff usage dashboard, mounted at /admin/usage/ ahead of the admin."""

from django.urls import path

from bananaweb import dashboard

urlpatterns = [
    path("", dashboard.usage_dashboard, name="usage-dashboard"),
    path("export.csv", dashboard.usage_export, name="usage-export"),
]
