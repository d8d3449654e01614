"""The gateway's data: personal API tokens, and the task ids handed out to their scripts."""

import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from bananaweb.models import ImageRequest

TOKEN_PREFIX = "bw_"
PREFIX_LENGTH = len(TOKEN_PREFIX) + 8  # what is shown of a token, e.g. "bw_3fA9kQ2z"


def hash_token(raw: str) -> str:
    """SHA-256 is enough here: the tokens are random with 256 bits of entropy, not passwords."""
    return hashlib.sha256(raw.encode()).hexdigest()


def new_raw_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class ApiTokenQuerySet(models.QuerySet):
    def for_user(self, user) -> "ApiTokenQuerySet":
        return self.filter(user=user)

    def active(self) -> "ApiTokenQuerySet":
        return self.filter(revoked_at__isnull=True)

    def newest_first(self) -> "ApiTokenQuerySet":
        return self.order_by("-created_at", "-pk")


class ApiToken(models.Model):
    """A user's personal token for the gateway API. Only its hash is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=PREFIX_LENGTH, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The key of the form that made it: posting that form again (a reload) makes
    # no second token.
    form_key = models.CharField(max_length=100, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "API token"
        constraints = [
            models.UniqueConstraint(
                fields=["user", "form_key"],
                condition=~models.Q(form_key=""),
                name="api_token_form_key_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def set_token(self, raw: str) -> None:
        self.prefix = raw[:PREFIX_LENGTH]
        self.token_hash = hash_token(raw)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class GatewayTask(models.Model):
    """The opaque taskId a script gets for one of its image requests."""

    task_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    image_request = models.OneToOneField(
        ImageRequest, on_delete=models.CASCADE, related_name="gateway_task"
    )
    api_token = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks"
    )

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return str(self.task_id)
