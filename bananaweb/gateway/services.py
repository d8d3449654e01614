"""The gateway's writes: issuing and revoking tokens, and creating requests from the API."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from bananaweb import services
from bananaweb.gateway import lookups
from bananaweb.gateway.models import ApiToken, GatewayTask, hash_token, new_raw_token
from bananaweb.models import ImageRequest

LAST_USED_GRANULARITY = timedelta(minutes=1)


class TokenAlreadyCreated(Exception):
    """The form that makes a token was sent again: its token exists, and its value
    was shown once already."""

    def __init__(self, api_token: ApiToken) -> None:
        super().__init__(
            f"The token “{api_token.name}” was already created by this form and its "
            "value shown once; it can't be shown again. Revoke it below if you "
            "didn't copy it."
        )
        self.api_token = api_token


class TooManyTokens(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You have {limit} active tokens, the most anyone may have. "
            "Revoke one you no longer use, then create the new one."
        )


def api_token_create(*, user, name: str, form_key: str = "") -> tuple[ApiToken, str]:
    """A new token for the user, and its raw value: the only time anyone sees it.

    Raises TokenAlreadyCreated when this form_key made one already, and
    TooManyTokens past BANANAWEB_MAX_API_TOKENS active tokens.
    """
    raw = new_raw_token()
    api_token = ApiToken(user=user, name=name.strip(), form_key=form_key)
    api_token.set_token(raw)
    api_token.full_clean(exclude=["form_key"])
    with transaction.atomic():
        # Lock the user's row: two posts at once can't both pass the checks.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        if form_key and (
            first := ApiToken.objects.for_user(user).filter(form_key=form_key).first()
        ):
            raise TokenAlreadyCreated(first)
        limit = settings.BANANAWEB_MAX_API_TOKENS
        if ApiToken.objects.for_user(user).active().count() >= limit:
            raise TooManyTokens(limit)
        api_token.save()
    return api_token, raw


def api_token_revoke(*, api_token: ApiToken) -> bool:
    """The one way a personal token is revoked, at once; True if it was active."""
    revoked = ApiToken.objects.filter(pk=api_token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    return bool(revoked)


def api_token_authenticate(*, raw: str) -> ApiToken | None:
    """The active token with this value, its last use recorded; None for any other value."""
    # Every API call's: its SQL built once per process.
    api_token = lookups.active_token(hash_token(raw))
    if api_token is None:
        api_token = (
            ApiToken.objects.active()
            .select_related("user")
            .filter(token_hash=hash_token(raw), user__is_active=True)
            .first()
        )
    if not api_token:
        return None
    now = timezone.now()
    # At most one write a minute per token, not one per request.
    if (
        api_token.last_used_at is None
        or now - api_token.last_used_at >= LAST_USED_GRANULARITY
    ):
        ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
        api_token.last_used_at = now
    return api_token


def gateway_task_create(
    *, api_token: ApiToken, data: dict, idempotency_key: str = ""
) -> GatewayTask:
    """Create the user's request, as the web UI would, and the taskId the script polls.

    A replay with the same Idempotency-Key gets the first taskId again.
    Raises what image_request_create raises: ValidationError, QuotaExceeded and
    IdempotencyConflict.
    """
    with transaction.atomic():
        image_request = services.image_request_create(
            user=api_token.user,
            data=data,
            source=ImageRequest.Source.API,
            idempotency_key=idempotency_key,
        )
        gateway_task, _ = GatewayTask.objects.get_or_create(
            image_request=image_request, defaults={"api_token": api_token}
        )
        return gateway_task
