"""Our one password rule beyond Django's: a password must not hold the user name.

Django's UserAttributeSimilarityValidator catches "member2024" for "member", but
not a longer password built around the name ("Member!2024-bananas").
"""

from django.core.exceptions import ValidationError

# Shorter names would refuse too many unrelated passwords.
MIN_NAME_LENGTH = 3


class UserNameInPasswordValidator:
    def validate(self, password: str, user=None) -> None:
        username = (user.get_username() if user else "").casefold()
        if len(username) >= MIN_NAME_LENGTH and username in password.casefold():
            raise ValidationError(
                "The password contains your user name: choose one without it.",
                code="password_contains_username",
            )

    def get_help_text(self) -> str:
        return "Your password can't contain your user name."
