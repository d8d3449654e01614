from django.urls import path

from bananaweb.prompts import views

urlpatterns = [
    path("templates/", views.prompt_templates, name="prompt-templates"),
    path("templates/new/", views.prompt_template_create, name="prompt-template-create"),
    path(
        "templates/new/from-form/",
        views.prompt_template_draft,
        name="prompt-template-draft",
    ),
    path(
        "templates/options/",
        views.prompt_template_options,
        name="prompt-template-options",
    ),
    path(
        "templates/<int:pk>/", views.prompt_template_edit, name="prompt-template-edit"
    ),
    path(
        "templates/<int:pk>/share/",
        views.prompt_template_share,
        name="prompt-template-share",
    ),
    path(
        "templates/<int:pk>/delete/",
        views.prompt_template_delete,
        name="prompt-template-delete",
    ),
    path(
        "templates/<int:pk>/use/", views.prompt_template_use, name="prompt-template-use"
    ),
    path(
        "templates/<int:pk>/fill/",
        views.prompt_template_fill,
        name="prompt-template-fill",
    ),
]
