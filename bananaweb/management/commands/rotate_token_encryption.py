"""Re-encrypt every stored upstream token with the newest key in BANANAWEB_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand
from django.db import transaction

from bananaweb import crypto
from bananaweb.models import TokenAuditEntry, UpstreamToken


class Command(BaseCommand):
    help = "Re-encrypt upstream tokens with the first key of BANANAWEB_ENCRYPTION_KEYS; then old keys can be dropped."

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            tokens = list(UpstreamToken.objects.select_for_update())
            for token in tokens:
                token.secret_encrypted = crypto.rotate(token.secret_encrypted)
                token.save(update_fields=["secret_encrypted"])
                TokenAuditEntry.objects.create(
                    token=token, token_name=token.name, event="re-encrypted", fields=["secret"]
                )
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {len(tokens)} token(s) with the newest key."))
