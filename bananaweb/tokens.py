"""Services for the shared upstream tokens: choosing one, and keeping their health."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from bananaweb import mountsea
from bananaweb.models import TokenAuditEntry, UpstreamToken

logger = logging.getLogger(__name__)


class NoUsableToken(Exception):
    pass


def token_select(*, user, exclude: set[int] = frozenset()) -> UpstreamToken:
    """The token a submission should use: highest priority first, least recently used within it."""
    token_seed_from_environment()
    candidates = UpstreamToken.objects.usable_by(user).exclude(pk__in=exclude)
    token = candidates.order_by("-priority", F("last_used_at").asc(nulls_first=True), "pk").first()
    if token is None:
        raise NoUsableToken
    return token


def token_mark_used(*, token: UpstreamToken) -> None:
    UpstreamToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())


def token_record_error(*, token: UpstreamToken, message: str) -> None:
    UpstreamToken.objects.filter(pk=token.pk).update(last_error=message, last_error_at=timezone.now())


def token_suspend(*, token: UpstreamToken, reason: str) -> None:
    """Take a token out of rotation after the upstream refused it; it is re-checked on a schedule."""
    from bananaweb.tasks import token_recheck_task

    now = timezone.now()
    recheck_at = now + timedelta(seconds=settings.BANANAWEB_TOKEN_RECHECK_DELAY)
    with transaction.atomic():
        UpstreamToken.objects.filter(pk=token.pk).update(
            suspended_reason=reason, last_error=reason, last_error_at=now, recheck_at=recheck_at
        )
        TokenAuditEntry.objects.create(
            token=token, token_name=token.name, event="suspended", fields=["suspended_reason"], detail=reason
        )
        transaction.on_commit(lambda: token_recheck_task.using(run_after=recheck_at).enqueue(token.pk))
    logger.warning("Upstream token %r taken out of rotation: %s", token.name, reason)


def token_cool_down(*, token: UpstreamToken, seconds: float | None, message: str) -> None:
    until = timezone.now() + timedelta(seconds=seconds if seconds is not None else 30)
    UpstreamToken.objects.filter(pk=token.pk).update(
        cooldown_until=until, last_error=message, last_error_at=timezone.now()
    )


def token_check(*, token: UpstreamToken, actor=None) -> mountsea.Outcome:
    """Ask the upstream whether the token works, spending no credits; restore or suspend it accordingly."""
    outcome = mountsea.client_for(token.secret).check_token()
    TokenAuditEntry.objects.create(
        token=token, token_name=token.name, actor=actor, event="checked", detail=outcome.message
    )
    match outcome:
        case mountsea.TokenOk():
            if token.suspended_reason:
                UpstreamToken.objects.filter(pk=token.pk).update(suspended_reason="", recheck_at=None)
                TokenAuditEntry.objects.create(
                    token=token, token_name=token.name, event="restored", fields=["suspended_reason"],
                    detail="The upstream accepts it again.",
                )
        case mountsea.AuthFailed() | mountsea.OutOfCredit():
            if not token.suspended_reason:
                token_suspend(token=token, reason=outcome.message)
            else:
                token_record_error(token=token, message=outcome.message)
        case _:
            token_record_error(token=token, message=outcome.message)
    return outcome


def token_recheck(*, token_id: int) -> float | None:
    """Re-check a suspended token; the seconds until the next check, or None when done."""
    token = UpstreamToken.objects.filter(pk=token_id).first()
    if token is None or not token.suspended_reason:
        return None
    outcome = token_check(token=token)
    if isinstance(outcome, mountsea.TokenOk):
        return None
    delay = settings.BANANAWEB_TOKEN_RECHECK_DELAY
    UpstreamToken.objects.filter(pk=token.pk).update(recheck_at=timezone.now() + timedelta(seconds=delay))
    return delay


def token_seed_from_environment() -> UpstreamToken | None:
    """MOUNTSEA_API_TOKEN becomes the first token when there are none yet."""
    secret = settings.MOUNTSEA_API_TOKEN.strip()
    if not secret or UpstreamToken.objects.exists():
        return None
    token = UpstreamToken(name="From MOUNTSEA_API_TOKEN", notes="Seeded from the environment on first start.")
    token.set_secret(secret)
    token.save()
    TokenAuditEntry.objects.create(token=token, token_name=token.name, event="created", fields=["secret"],
                                   detail="Seeded from MOUNTSEA_API_TOKEN.")
    return token
