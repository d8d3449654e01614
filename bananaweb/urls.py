from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from bananaweb import dashboard, health, views

urlpatterns = [
    path("", views.index, name="index"),
    path("requests/", views.request_create, name="request-create"),
    path("requests/options/", views.request_options, name="request-options"),
    path("requests/<int:pk>/", views.request_detail, name="request-detail"),
    path("requests/<int:pk>/card/", views.request_card, name="request-card"),
    path("requests/updates/", views.request_updates, name="request-updates"),
    path(
        "requests/<int:pk>/resubmit/", views.request_resubmit, name="request-resubmit"
    ),
    path(
        "requests/<int:pk>/run-again/",
        views.request_run_again,
        name="request-run-again",
    ),
    path(
        "requests/<int:pk>/images/<int:image_pk>/<str:variant>/",
        views.image_file,
        name="image-file",
    ),
    path("requests/<int:pk>/star/", views.request_star, name="request-star"),
    path(
        "requests/<int:pk>/visibility/",
        views.request_visibility,
        name="request-visibility",
    ),
    path(
        "requests/<int:pk>/download/", views.request_download, name="request-download"
    ),
    path(
        "requests/groups/<uuid:group>/download/",
        views.group_download,
        name="group-download",
    ),
    path("requests/download/", views.selection_download, name="selection-download"),
    path("requests/compare/", views.compare, name="compare"),
    path("requests/delete/", views.requests_delete, name="requests-delete"),
    path("uploads/<int:pk>/", views.upload_file, name="upload-file"),
    path("files/<str:token>/", views.public_file, name="public-file"),
    path("settings/", views.user_settings, name="user-settings"),
    path("", include("bananaweb.gateway.urls")),
    path("", include("bananaweb.team.urls")),
    path("", include("bananaweb.prompts.urls")),
    path("admin/usage/", dashboard.usage_dashboard, name="usage-dashboard"),
    path("admin/usage/export.csv", dashboard.usage_export, name="usage-export"),
    # Only signing in and out: no password reset or change pages (admins set passwords).
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # For load balancers: no sign-in, no trailing slash, plain HTTP allowed.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]
