from django.urls import path

from bananaweb.gateway import views

urlpatterns = [
    # The upstream's paths under api/, so a Mountsea script only changes its base URL.
    path("api/gemini/image/generate", views.generate, name="gateway-generate"),
    path("api/gemini/task/result", views.task_result, name="gateway-task-result"),
    path("api/images/<str:image_id>/", views.api_image, name="gateway-image"),
    path("api/openapi.json", views.openapi_document, name="gateway-openapi"),
    path("settings/tokens/", views.api_tokens, name="api-tokens"),
    path(
        "settings/tokens/<int:pk>/revoke/",
        views.api_token_revoke,
        name="api-token-revoke",
    ),
]
