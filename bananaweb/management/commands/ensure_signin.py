"""Make sure someone can sign in to a fresh instance, and say how."""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first admin user when there is none, and print how to sign in."

    def handle(self, *args, **options) -> None:
        User = get_user_model()
        username = os.environ.get("BANANAWEB_ADMIN_USER", "admin")
        password_file = settings.VAR_DIR / "admin-password.txt"
        env_password = os.environ.get("BANANAWEB_ADMIN_PASSWORD", "")

        if not User.objects.filter(username=username).exists():
            password = env_password or secrets.token_urlsafe(12)
            User.objects.create_superuser(
                username=username, email="", password=password
            )
            if not env_password:
                password_file.write_text(password + "\n")
                password_file.chmod(0o600)
            self.stdout.write(f"Created the admin user '{username}'.")

        if env_password:
            where = "the BANANAWEB_ADMIN_PASSWORD environment variable"
        elif password_file.exists():
            where = f"{os.path.relpath(password_file)} (cat it)"
        else:
            where = f"whatever it was set to (`python manage.py changepassword {username}` resets it)"
        self.stdout.write(
            self.style.SUCCESS(f"Sign in as '{username}'; the password is in {where}.")
        )
