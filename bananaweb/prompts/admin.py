"""The admin: every prompt template, personal or shared, with its owner."""

from django.contrib import admin

from bananaweb.admin_lookups import ModelAdmin
from bananaweb.prompts.models import PromptTemplate


@admin.register(PromptTemplate)
class PromptTemplateAdmin(ModelAdmin):
    list_display = ["name", "user", "shared", "model", "aspect_ratio", "updated_at"]
    list_filter = ["shared", "model"]
    search_fields = ["name", "prompt", "user__username"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]
    fields = [
        "name",
        "user",
        "prompt",
        "model",
        "aspect_ratio",
        "resolution",
        "shared",
        "created_at",
        "updated_at",
    ]
    readonly_fields = ["created_at", "updated_at"]
