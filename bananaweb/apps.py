from django.apps import AppConfig
from django.conf import settings
from django.core import checks


def development_switch_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """`check --deploy` refuses the development switch: its keys are public."""
    if not settings.BANANAWEB_DEV:
        return []
    return [
        checks.Error(
            "BANANAWEB_DEV is on: SECRET_KEY and the token encryption key may be "
            "development values anyone can read, and HTTPS is not enforced.",
            hint="Unset BANANAWEB_DEV and set SECRET_KEY, BANANAWEB_ENCRYPTION_KEYS "
            "and ALLOWED_HOSTS (README, Production).",
            id="bananaweb.E001",
        )
    ]


class BananawebConfig(AppConfig):
    name = "bananaweb"
    verbose_name = "bananaweb"

    def ready(self) -> None:
        checks.register(development_switch_check, checks.Tags.security, deploy=True)
