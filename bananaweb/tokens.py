"""Services for the shared upstream tokens: every write to them, and its audit entry.

Choosing a token for a submission, keeping the tokens healthy (suspend,
cool down, check, re-check) and the admin's changes all live here; nothing
else writes an UpstreamToken or a TokenAuditEntry.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Min
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from bananaweb import crypto, mountsea
from bananaweb.followups import FollowUp, Step
from bananaweb.models import TokenAuditEntry, TokenEvent, UpstreamToken

logger = logging.getLogger(__name__)


SEEDED_DETAIL = "Seeded from MOUNTSEA_API_TOKEN."
UNDECRYPTABLE = (
    "The upstream token can't be decrypted with the configured keys (SECRET_KEY "
    "or BANANAWEB_ENCRYPTION_KEYS changed?); paste it again in the admin."
)


class NoUsableToken(Exception):
    pass


def _audit(
    token: UpstreamToken, event: TokenEvent, *, actor=None, actor_id=None, **fields
) -> None:
    TokenAuditEntry.objects.create(
        token=token,
        token_name=token.name,
        actor_id=actor.pk if actor else actor_id,
        event=event,
        **fields,
    )


# --- Choosing one -------------------------------------------------------------------


def token_select(*, user, exclude: set[int] = frozenset()) -> UpstreamToken:
    """The token a submission should use: highest priority first, least recently
    used within it."""
    candidates = UpstreamToken.objects.usable_by(user).exclude(pk__in=exclude)
    token = candidates.order_by(
        "-priority", F("last_used_at").asc(nulls_first=True), "pk"
    ).first()
    if token is None:
        raise NoUsableToken
    return token


def token_free_at(*, user, since: datetime) -> datetime | None:
    """When the first healthy token open to the user ends the cool-down it was in
    at `since` (when none could be chosen): a moment that may have passed already.
    None when no token was only cooling down."""
    return (
        UpstreamToken.objects.healthy()
        .open_to(user)
        .filter(cooldown_until__gt=since)
        .aggregate(first=Min("cooldown_until"))["first"]
    )


def token_unavailable_reason(*, user) -> str:
    """Why no token can serve the user at all, in a sentence: what an admin must do."""
    tokens = UpstreamToken.objects.all()
    if not tokens.exists():
        return "no upstream API token has been added; ask an admin to add one"
    open_tokens = tokens.open_to(user)
    if not open_tokens.exists():
        return (
            "none of the upstream API tokens is open to your groups; ask an admin "
            "to open one to you"
        )
    if not open_tokens.filter(is_active=True).exists():
        return "every upstream API token is disabled; ask an admin to re-enable one"
    return (
        "every upstream API token is out of rotation: the image service refused "
        "them (they are re-checked automatically every few minutes) or they can't "
        "be decrypted; ask an admin to check or replace them"
    )


def token_mark_used(*, token: UpstreamToken) -> None:
    UpstreamToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())


# --- Health -------------------------------------------------------------------------


def token_record_error(*, token: UpstreamToken, message: str) -> None:
    UpstreamToken.objects.filter(pk=token.pk).update(
        last_error=message, last_error_at=timezone.now()
    )


def token_suspend(*, token: UpstreamToken, reason: str) -> FollowUp:
    """Take a token out of rotation after the upstream refused it; the follow-up
    re-checks it later."""
    now = timezone.now()
    delay = settings.BANANAWEB_TOKEN_RECHECK_DELAY
    with transaction.atomic():
        UpstreamToken.objects.filter(pk=token.pk).update(
            suspended_reason=reason,
            last_error=reason,
            last_error_at=now,
            recheck_at=now + timedelta(seconds=delay),
        )
        _audit(token, TokenEvent.SUSPENDED, fields=["suspended_reason"], detail=reason)
    logger.warning("Upstream token %r taken out of rotation: %s", token.name, reason)
    return FollowUp(Step.RECHECK_TOKEN, (token.pk,), delay=delay)


def token_cool_down(
    *, token: UpstreamToken, seconds: float | None, message: str
) -> None:
    until = timezone.now() + timedelta(seconds=seconds if seconds is not None else 30)
    UpstreamToken.objects.filter(pk=token.pk).update(
        cooldown_until=until, last_error=message, last_error_at=timezone.now()
    )


def token_check(*, token_id: int, actor_id: int | None = None) -> list[FollowUp]:
    """Ask the upstream whether the token works, spending no credits; restore or
    suspend it accordingly. Runs in a task, never in a web request."""
    token = UpstreamToken.objects.filter(pk=token_id).first()
    if token is None:
        return []
    try:
        outcome = mountsea.client_for(token.secret).check_token()
    except crypto.DecryptionFailed:
        outcome = mountsea.AuthFailed(0, UNDECRYPTABLE)
    _audit(token, TokenEvent.CHECKED, actor_id=actor_id, detail=outcome.message)
    match outcome:
        case mountsea.TokenOk():
            if token.suspended_reason:
                UpstreamToken.objects.filter(pk=token.pk).update(
                    suspended_reason="", recheck_at=None
                )
                _audit(
                    token,
                    TokenEvent.RESTORED,
                    fields=["suspended_reason"],
                    detail="The upstream accepts it again.",
                )
        case mountsea.AuthFailed() | mountsea.OutOfCredit() if (
            not token.suspended_reason
        ):
            return [token_suspend(token=token, reason=outcome.message)]
        case _:
            token_record_error(token=token, message=outcome.message)
    return []


def token_recheck(*, token_id: int) -> list[FollowUp]:
    """Re-check a suspended token, and again later while it is still refused."""
    token = UpstreamToken.objects.filter(pk=token_id).first()
    if token is None or not token.suspended_reason:
        return []
    token_check(token_id=token.pk)
    token.refresh_from_db(fields=["suspended_reason"])
    if not token.suspended_reason:
        return []
    delay = settings.BANANAWEB_TOKEN_RECHECK_DELAY
    UpstreamToken.objects.filter(pk=token.pk).update(
        recheck_at=timezone.now() + timedelta(seconds=delay)
    )
    return [FollowUp(Step.RECHECK_TOKEN, (token.pk,), delay=delay)]


# --- The admin's changes ------------------------------------------------------------


@sensitive_variables("secret")
def token_save(
    *, token: UpstreamToken, secret: str, changed: list[str], actor
) -> UpstreamToken:
    """Create or change a token from the admin; the secret only when one is given."""
    created = token.pk is None
    if secret:
        token.set_secret(secret)
        # A new secret deserves a fresh try, whatever was wrong with the old one.
        token.suspended_reason = ""
        token.recheck_at = None
    if created:
        token.created_by = actor
    fields = [name for name in changed if name != "secret" or secret]
    with transaction.atomic():
        token.save()
        if fields or created:
            event = TokenEvent.CREATED if created else TokenEvent.CHANGED
            _audit(token, event, actor=actor, fields=sorted(fields))
    return token


def token_delete(*, token: UpstreamToken, actor) -> None:
    with transaction.atomic():
        _audit(token, TokenEvent.DELETED, actor=actor)
        token.delete()


def token_enable(*, token: UpstreamToken, actor) -> None:
    """Back into rotation; enabling by hand also clears an automatic suspension."""
    with transaction.atomic():
        UpstreamToken.objects.filter(pk=token.pk).update(
            is_active=True, suspended_reason="", cooldown_until=None, recheck_at=None
        )
        _audit(token, TokenEvent.ENABLED, actor=actor, fields=["is_active"])


def token_disable(*, token: UpstreamToken, actor) -> None:
    with transaction.atomic():
        UpstreamToken.objects.filter(pk=token.pk).update(is_active=False)
        _audit(token, TokenEvent.DISABLED, actor=actor, fields=["is_active"])


def token_check_request(*, token: UpstreamToken, actor) -> FollowUp:
    """Record that someone asked for a check; the follow-up runs it in the background."""
    _audit(token, TokenEvent.CHECK_REQUESTED, actor=actor)
    return FollowUp(Step.CHECK_TOKEN, (token.pk, actor.pk))


def token_reencrypt_all() -> int:
    """Re-encrypt every token with the newest key; the count."""
    with transaction.atomic():
        tokens = list(UpstreamToken.objects.select_for_update())
        for token in tokens:
            token.secret_encrypted = crypto.rotate(token.secret_encrypted)
            token.save(update_fields=["secret_encrypted"])
            _audit(token, TokenEvent.RE_ENCRYPTED, fields=["secret"])
    return len(tokens)


def token_seed_from_environment() -> UpstreamToken | None:
    """MOUNTSEA_API_TOKEN becomes the first token when there are none yet.

    Called at start-up (`manage.py start_background`), never per submission; and
    only ever once: a seeded token an admin deleted (say, because it leaked) is
    not brought back.
    """
    secret = settings.MOUNTSEA_API_TOKEN.strip()
    seeded = TokenAuditEntry.objects.filter(
        event=TokenEvent.CREATED, detail=SEEDED_DETAIL
    )
    if not secret or UpstreamToken.objects.exists() or seeded.exists():
        return None
    token = UpstreamToken(
        name="From MOUNTSEA_API_TOKEN",
        notes="Seeded from the environment on first start.",
    )
    token.set_secret(secret)
    with transaction.atomic():
        token.save()
        _audit(
            token,
            TokenEvent.CREATED,
            fields=["secret"],
            detail=SEEDED_DETAIL,
        )
    return token
