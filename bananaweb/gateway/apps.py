from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "bananaweb.gateway"
    label = "gateway"
    verbose_name = "Gateway API"
    default_auto_field = "django.db.models.BigAutoField"
