"""Re-encrypt every stored upstream token with the newest key in BANANAWEB_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand

from bananaweb import tokens


class Command(BaseCommand):
    help = (
        "Re-encrypt upstream tokens with the first key of BANANAWEB_ENCRYPTION_KEYS; "
        "then old keys can be dropped."
    )

    def handle(self, *args, **options) -> None:
        count = tokens.token_reencrypt_all()
        self.stdout.write(
            self.style.SUCCESS(f"Re-encrypted {count} token(s) with the newest key.")
        )
