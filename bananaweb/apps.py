from django.apps import AppConfig


class BananawebConfig(AppConfig):
    name = "bananaweb"
    verbose_name = "bananaweb"
