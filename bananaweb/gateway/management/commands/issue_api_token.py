"""Issue a gateway API token: only the token goes to stdout, so scripts can capture it."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from bananaweb.gateway import services


class Command(BaseCommand):
    help = "Issue a personal API token for a user and print it (only it, on stdout)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--name",
            default="Issued from the command line",
            help="What the token is for.",
        )

    def handle(self, *args, username: str, name: str, **options) -> None:
        User = get_user_model()
        try:
            user = User.objects.get_by_natural_key(username)
        except User.DoesNotExist:
            raise CommandError(f"No user {username!r}.") from None
        try:
            api_token, raw = services.api_token_create(user=user, name=name)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stderr.write(
            f"Issued token “{api_token.name}” ({api_token.prefix}…) for {username}. "
            "It is shown only this once."
        )
        self.stdout.write(raw)
