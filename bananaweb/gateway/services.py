"""The gateway's writes: issuing and revoking tokens, and creating requests from the API."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from bananaweb import services
from bananaweb.gateway.models import ApiToken, GatewayTask, hash_token, new_raw_token
from bananaweb.models import ImageRequest

LAST_USED_GRANULARITY = timedelta(minutes=1)


def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """A new token for the user, and its raw value: the only time anyone sees it."""
    raw = new_raw_token()
    api_token = ApiToken(user=user, name=name.strip())
    api_token.set_token(raw)
    api_token.full_clean()
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
    api_token = (
        ApiToken.objects.active()
        .select_related("user")
        .filter(token_hash=hash_token(raw), user__is_active=True)
        .first()
    )
    if api_token is None:
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
