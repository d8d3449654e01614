from django.apps import AppConfig


class TeamConfig(AppConfig):
    name = "bananaweb.team"
    label = "team"
    verbose_name = "Collections and share links"
    default_auto_field = "django.db.models.BigAutoField"
