"""bananaweb's data: image requests and their images, upstream tokens, quotas."""

import operator
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import reduce

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from bananaweb import crypto, logs, options


def _in_choices(
    field: str, choices: type[models.TextChoices], blank: bool = False
) -> Q:
    allowed = Q(**{f"{field}__in": choices.values})
    return allowed | Q(**{field: ""}) if blank else allowed


def options_fit_model() -> Q:
    """Each model's aspect ratio and resolution are ones it offers (options.MODELS),
    or blank for its default."""
    return reduce(
        operator.or_,
        (
            Q(
                model=name,
                aspect_ratio__in=["", *spec.aspect_ratios],
                resolution__in=["", *spec.resolutions],
            )
            for name, spec in options.MODELS.items()
        ),
    )


def local_day_start(now: datetime | None = None) -> datetime:
    """Midnight today in the site's time zone: when daily counts start."""
    now = timezone.localtime(now)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


# --- Upstream tokens -----------------------------------------------------------


class UpstreamTokenQuerySet(models.QuerySet):
    def open_to(self, user) -> "UpstreamTokenQuerySet":
        """Tokens the user's groups may use (a token with no groups is everyone's)."""
        return self.filter(
            Q(groups__isnull=True) | Q(groups__in=user.groups.all())
        ).distinct()

    def healthy(self) -> "UpstreamTokenQuerySet":
        """Enabled by the admins and not refused by the upstream."""
        return self.filter(is_active=True, suspended_reason="")

    def usable_by(
        self, user, *, now: datetime | None = None
    ) -> "UpstreamTokenQuerySet":
        """Active, healthy, not cooling down, and open to the user's groups."""
        now = now or timezone.now()
        return (
            self.healthy()
            .filter(Q(cooldown_until__isnull=True) | Q(cooldown_until__lte=now))
            .open_to(user)
        )

    def with_usage(self) -> "UpstreamTokenQuerySet":
        today = local_day_start()
        accepted = ~Q(image_requests__upstream_task_id="")
        return self.annotate(
            uses_total=models.Count("image_requests", filter=accepted, distinct=True),
            uses_today=models.Count(
                "image_requests",
                filter=accepted & Q(image_requests__submitted_at__gte=today),
                distinct=True,
            ),
        )


class TokenState(models.TextChoices):
    DISABLED = "disabled", "Disabled"
    SUSPENDED = "suspended", "Out of rotation"
    COOLING_DOWN = "cooling down", "Cooling down"
    READY = "ready", "Ready"


class UpstreamToken(models.Model):
    """A shared, paid Mountsea API token. The secret is stored encrypted."""

    State = TokenState

    name = models.CharField(max_length=100, unique=True)
    secret_encrypted = models.TextField(editable=False)
    last4 = models.CharField(max_length=4, editable=False)
    is_active = models.BooleanField(
        "active",
        default=True,
        help_text="Unticked by an admin, it stays out of rotation.",
    )
    priority = models.IntegerField(
        default=0, help_text="Higher first; tokens of equal priority share the load."
    )
    groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="upstream_tokens",
        help_text="Only members of these groups may use it; none means everyone.",
    )
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    # Set when the upstream refused the token (401/403, out of credit); cleared
    # by itself once a re-check succeeds.
    suspended_reason = models.TextField(blank=True)
    recheck_at = models.DateTimeField(null=True, blank=True)
    cooldown_until = models.DateTimeField(null=True, blank=True)

    objects = UpstreamTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-priority", "name"]

    def __str__(self) -> str:
        return f"{self.name} (…{self.last4})"

    @sensitive_variables("secret")
    def set_secret(self, secret: str) -> None:
        secret = secret.strip()
        if not secret:
            raise ValidationError({"secret": "The token can't be empty."})
        self.secret_encrypted = crypto.encrypt(secret)
        self.last4 = secret[-4:]

    @property
    def secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)

    @property
    def masked(self) -> str:
        return f"••••{self.last4}"

    @property
    def state(self) -> TokenState:
        if not self.is_active:
            return TokenState.DISABLED
        if self.suspended_reason:
            return TokenState.SUSPENDED
        if self.cooldown_until and self.cooldown_until > timezone.now():
            return TokenState.COOLING_DOWN
        return TokenState.READY


class TokenEvent(models.TextChoices):
    CREATED = "created", "Created"
    CHANGED = "changed", "Changed"
    DELETED = "deleted", "Deleted"
    ENABLED = "enabled", "Enabled"
    DISABLED = "disabled", "Disabled"
    CHECK_REQUESTED = "check requested", "Check requested"
    CHECKED = "checked", "Checked"
    SUSPENDED = "suspended", "Suspended"
    RESTORED = "restored", "Restored"
    RE_ENCRYPTED = "re-encrypted", "Re-encrypted"


class TokenAuditEntry(models.Model):
    """Who changed which token, when, and which fields: never the secret's value."""

    Event = TokenEvent

    token = models.ForeignKey(
        UpstreamToken,
        null=True,
        on_delete=models.SET_NULL,
        related_name="audit_entries",
    )
    token_name = models.CharField(max_length=100)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    at = models.DateTimeField(auto_now_add=True)
    event = models.CharField(max_length=40, choices=TokenEvent)
    fields = models.JSONField(default=list, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "token audit entries"

    def __str__(self) -> str:
        who = self.actor or "bananaweb"
        return f"{self.at:%Y-%m-%d %H:%M} {who} {self.event} {self.token_name}"


# --- Quotas --------------------------------------------------------------------


class UserQuota(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota"
    )
    daily_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests per day; empty uses the default (BANANAWEB_DEFAULT_DAILY_QUOTA).",
    )

    def __str__(self) -> str:
        return f"Quota for {self.user}"


# --- Image requests ------------------------------------------------------------


class Visibility(models.TextChoices):
    """Who may see a request besides its owner (staff see every one)."""

    PRIVATE = "private", "Private"
    TEAM = "team", "Team"


def _ended(status: str, code: str, message: str) -> dict:
    """The fields of a request that has ended: one definition for a request in
    hand (ImageRequest's methods) and for many at once (the QuerySet's)."""
    return {
        "status": status,
        "error_code": code,
        "error_message": message,
        "finished_at": timezone.now(),
    }


def _outcome_unknown(reason: str) -> dict:
    message = UNKNOWN_OUTCOME_MESSAGE.format(reason=reason.rstrip("."))
    return _ended(RequestStatus.UNKNOWN, ErrorCode.UNKNOWN_OUTCOME, message)


def _expired() -> dict:
    ended = _ended(RequestStatus.FAILED, ErrorCode.EXPIRED, EXPIRED_MESSAGE)
    return ended | {"counts_toward_quota": False}


class ImageRequestQuerySet(models.QuerySet):
    def mark_outcome_unknown(self, *, reason: str) -> int:
        """ImageRequest.mark_outcome_unknown for every request here, in one query."""
        return self.update(**_outcome_unknown(reason))

    def expire(self) -> int:
        """ImageRequest.expire for every request here, in one query."""
        return self.update(**_expired())

    def for_user(self, user) -> "ImageRequestQuerySet":
        """The user's requests, less those they deleted (kept for the accounting).
        Every write (delete, change, resubmit) starts here: only the owner's."""
        return self.filter(user=user, deleted_at__isnull=True)

    def visible_to(self, user) -> "ImageRequestQuerySet":
        """What the user may see, read-only unless it is theirs: their own, every
        team-visible request, those with an image in a collection they are in, and
        for staff everything; never a deleted one.

        A clause that joins to many rows (collections) goes in as a `pk__in`
        subquery, so that no request is listed twice.
        """
        live = self.filter(deleted_at__isnull=True)
        if not user.is_authenticated:
            return live.none()
        if user.is_staff:
            return live
        return live.filter(
            Q(user=user)
            | Q(visibility=Visibility.TEAM)
            | Q(pk__in=self.model.objects.in_collections_of(user).values("pk"))
        )

    def in_collections_of(self, user) -> "ImageRequestQuerySet":
        """Requests with an image its owner put in a collection the user owns or is
        a member of (by name or by a group): bananaweb.team's collections, named by
        lookups so that this module imports nothing of it.

        Only its owner's adding counts: a teammate's image someone else added was
        seen as the team's, and stops being seen this way once made private.
        """
        item = "images__collection_items"
        collection = f"{item}__collection"
        # One filter() call: every condition is on the same item row.
        return self.filter(
            Q(**{f"{item}__added_by": F("user")})
            & (
                Q(**{f"{collection}__owner": user})
                | Q(**{f"{collection}__members__user": user})
                | Q(**{f"{collection}__members__group__in": user.groups.all()})
            )
        )

    def team(self) -> "ImageRequestQuerySet":
        """Everyone's requests shared with the team: the Team view."""
        return self.filter(visibility=Visibility.TEAM, deleted_at__isnull=True)

    def with_starred(self, user) -> "ImageRequestQuerySet":
        """Each request's `starred`: whether this user starred it (stars are each
        person's own)."""
        mine = Star.objects.filter(user=user, image_request=OuterRef("pk"))
        return self.annotate(starred=Exists(mine))

    def newest_first(self) -> "ImageRequestQuerySet":
        return self.order_by("-created_at", "-pk")

    def counting_today(self) -> "ImageRequestQuerySet":
        return self.filter(counts_toward_quota=True, created_at__gte=local_day_start())

    def with_images(self) -> "ImageRequestQuerySet":
        return self.prefetch_related("images")


class RequestStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SUBMITTING = "submitting", "Sending"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Outcome unknown"


class ErrorCode(models.TextChoices):
    """Why a request ended without an image; the gateway maps each to an errorCode."""

    REJECTED = "rejected", "Refused by the image service"
    IMAGE_URLS = "image_urls", "An image URL can't be used"
    NO_TOKEN = "no_token", "No upstream token available"
    UNAVAILABLE = "unavailable", "Image service unavailable"
    UNKNOWN_OUTCOME = "unknown_outcome", "Outcome unknown"
    NO_IMAGES = "no_images", "Completed without an image"
    IMAGE_FETCH = "image_fetch", "Image could not be saved"
    DEADLINE = "deadline", "No result in time"
    UPSTREAM_FAILED = "upstream_failed", "Failed upstream"
    UPSTREAM_CANCELLED = "upstream_cancelled", "Cancelled upstream"
    UPSTREAM_TIMEOUT = "upstream_timeout", "Timed out upstream"
    TOKEN_DELETED = "token_deleted", "Its upstream token was deleted"
    EXPIRED = "expired", "Never sent in time"


UNKNOWN_OUTCOME_MESSAGE = (
    "We sent this request but got no usable answer ({reason}), so we can't tell "
    "whether the image service accepted it. It was not resent automatically, so you "
    "are never charged twice. Resubmit it if no image arrives."
)


class GroupKind(models.TextChoices):
    VARIATIONS = "variations", "Variations"
    MODELS = "models", "Every model"


IN_FLIGHT = (RequestStatus.QUEUED, RequestStatus.SUBMITTING, RequestStatus.IN_PROGRESS)
EXPIRED_MESSAGE = (
    "It could not be sent before its deadline (no task worker or no upstream token "
    "could take it in time), so it was not sent at all and nothing was charged. "
    "Resubmit it when you like."
)


class ImageRequest(models.Model):
    """One generate or edit request, saved before anything is sent upstream.

    Its state changes are its methods (accept, fail, ...): they set the fields
    that go with each status; the caller saves.
    """

    Status = RequestStatus
    ErrorCode = ErrorCode
    GroupKind = GroupKind
    Visibility = Visibility
    IN_FLIGHT = IN_FLIGHT

    class Source(models.TextChoices):
        WEB = "web", "Web"
        API = "api", "API"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="image_requests",
    )
    source = models.CharField(max_length=3, choices=Source, default=Source.WEB)

    # What the user asked for, with the API's own names.
    action = models.CharField(max_length=8, choices=options.Action)
    prompt = models.TextField(max_length=options.PROMPT_MAX_LENGTH)
    model = models.CharField(
        max_length=20, choices=options.Model, default=options.DEFAULT_MODEL
    )
    aspect_ratio = models.CharField(
        max_length=5, choices=options.AspectRatio, blank=True
    )
    resolution = models.CharField(max_length=2, choices=options.Resolution, blank=True)
    num_images = models.PositiveSmallIntegerField(default=1)
    image_urls = models.JSONField(default=list, blank=True)

    # What happened to it.
    status = models.CharField(
        max_length=12, choices=RequestStatus, default=RequestStatus.QUEUED
    )
    upstream_status = models.CharField(max_length=40, blank=True)
    upstream_task_id = models.CharField(max_length=200, blank=True, db_index=True)
    upstream_token = models.ForeignKey(
        UpstreamToken,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="image_requests",
    )
    result = models.JSONField(null=True, blank=True)
    error_message = models.TextField(blank=True)
    error_code = models.CharField(max_length=40, choices=ErrorCode, blank=True)
    # A secret-free log of every upstream call, for the admin.
    exchange = models.JSONField(default=list, blank=True)
    counts_toward_quota = models.BooleanField(default=True)
    poll_count = models.PositiveIntegerField(default=0)

    # Recovery: when the next background step should have run by (the reconciler
    # reschedules one whose task was lost), when the upstream call began (a send
    # that began and never finished has an unknown outcome), and how many times
    # the current step failed for a passing reason (bounded, with backoff).
    due_at = models.DateTimeField(default=timezone.now)
    sending_started_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Made together: variations of one prompt, or one prompt on every model.
    group = models.UUIDField(null=True, blank=True, db_index=True)
    group_kind = models.CharField(max_length=10, choices=GroupKind, blank=True)
    # Private: its owner (and staff) only; team: every signed-in member, read-only.
    # New requests take their owner's default (services.default_visibility).
    visibility = models.CharField(
        max_length=7, choices=Visibility, default=Visibility.PRIVATE
    )
    # Deleted by its owner: hidden from them, its files gone, the row kept for the
    # staff's accounting.
    deleted_at = models.DateTimeField(null=True, blank=True)

    # A replayed submission (double click, reload, a retrying script) finds the
    # first request by its key; request_hash tells a replay from a key reused for
    # another body.
    idempotency_key = models.CharField(max_length=100, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)
    # The id of the web or API request that made it (its log lines' request_id):
    # the background steps bind it again, so a submission's lines share one id,
    # whichever path created it and however often the reconciler reschedules it.
    trace_id = models.CharField(
        max_length=64, blank=True, default=logs.current_request_id
    )

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ImageRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        permissions = [("view_usage", "Can see the usage dashboard and export")]
        indexes = [
            models.Index(fields=["user", "-created_at"]),
            models.Index(
                fields=["due_at"],
                condition=Q(status__in=IN_FLIGHT),
                name="image_request_in_flight_due",
            ),
            # The history's pages and their count: index-only, in its order, on
            # the live requests (a group's first is found by the group).
            models.Index(
                fields=["user", "-created_at", "-id", "group"],
                condition=Q(deleted_at__isnull=True),
                name="image_request_history",
            ),
            # The Team view: a few percent of every request, newest first.
            models.Index(
                fields=["-created_at", "-id", "group", "user"],
                condition=Q(visibility=Visibility.TEAM, deleted_at__isnull=True),
                name="image_request_team_history",
            ),
            # Who shares anything (the Team view's people): one probe per person.
            # The team history's index has the user last, so each person who
            # shares nothing would cost a walk through all that is shared.
            models.Index(
                fields=["user"],
                condition=Q(visibility=Visibility.TEAM, deleted_at__isnull=True),
                name="image_request_team_people",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="image_request_idempotency_key_unique",
            ),
            models.CheckConstraint(
                condition=_in_choices("action", options.Action),
                name="image_request_action_valid",
            ),
            models.CheckConstraint(
                condition=_in_choices("model", options.Model),
                name="image_request_model_valid",
            ),
            models.CheckConstraint(
                condition=_in_choices("aspect_ratio", options.AspectRatio, blank=True),
                name="image_request_aspect_ratio_valid",
            ),
            models.CheckConstraint(
                condition=_in_choices("resolution", options.Resolution, blank=True),
                name="image_request_resolution_valid",
            ),
            models.CheckConstraint(
                condition=options_fit_model(),
                name="image_request_options_fit_model",
            ),
            models.CheckConstraint(
                condition=Q(num_images=1), name="image_request_one_image"
            ),
            models.CheckConstraint(
                condition=_in_choices("status", RequestStatus),
                name="image_request_status_valid",
            ),
            models.CheckConstraint(
                condition=_in_choices("visibility", Visibility),
                name="image_request_visibility_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.prompt[:40]}"

    @property
    def starred(self) -> bool:
        """Whether the person looking starred it: set by `with_starred(user)` (every
        list does), or else whether its owner did (one query)."""
        if "_starred" not in self.__dict__:
            self._starred = self.stars.filter(user_id=self.user_id).exists()
        return self._starred

    @starred.setter
    def starred(self, value: bool) -> None:
        self._starred = bool(value)

    def refresh_from_db(self, *args, **kwargs) -> None:
        self.__dict__.pop("_starred", None)  # read again, as the fields are
        super().refresh_from_db(*args, **kwargs)

    # How many of our own images it is made from before its Reference rows are
    # saved (they need its id): set by the service that creates it.
    pending_references = 0

    def clean(self) -> None:
        references = self.references.count() if self.pk else self.pending_references
        errors = options.option_errors(
            prompt=self.prompt,
            action=self.action,
            model=self.model,
            aspect_ratio=self.aspect_ratio,
            resolution=self.resolution,
            image_urls=self.image_urls,
            num_images=self.num_images,
            max_image_urls=settings.BANANAWEB_MAX_IMAGE_URLS,
            references=references,
        )
        if errors:
            raise ValidationError(errors)

    def upstream_payload(self, *, reference_urls: list[str] = ()) -> dict:
        """The body sent upstream; our own images (signed URLs) come first."""
        return options.upstream_payload(
            prompt=self.prompt,
            action=self.action,
            model=self.model,
            aspect_ratio=self.aspect_ratio,
            resolution=self.resolution,
            image_urls=[*reference_urls, *self.image_urls],
        )

    # --- State changes ------------------------------------------------------

    def accept(self, *, upstream_task_id: str, token: UpstreamToken) -> None:
        """The upstream took it and gave a task id: now it is polled."""
        self.status = RequestStatus.IN_PROGRESS
        self.upstream_task_id = upstream_task_id
        self.upstream_token = token
        self.upstream_status = options.UpstreamStatus.PENDING
        self.submitted_at = timezone.now()
        self.attempts = 0  # a new step: its own count of passing failures
        self.error_message = ""  # a wait for a rate limit, now over

    def wait(self, *, message: str) -> None:
        """Nothing was accepted (rate limited, unreachable): queued to be sent again."""
        self.status = RequestStatus.QUEUED
        self.sending_started_at = None
        self.error_message = message

    def expire(self) -> None:
        """Never sent by its submit deadline: it ends, and nothing was charged."""
        self._set(_expired())

    def miss_deadline(self) -> None:
        """No result by the poll deadline: bananaweb stops waiting."""
        minutes = round(settings.BANANAWEB_POLL_DEADLINE / 60)
        self.fail(
            ErrorCode.DEADLINE,
            f"No result after {minutes} minutes, so bananaweb stopped waiting.",
        )

    def fail(
        self, code: ErrorCode, message: str, *, release_quota: bool = True
    ) -> None:
        """It ended without an image; it no longer counts toward the quota unless
        the upstream may have charged for it."""
        self._finish(RequestStatus.FAILED, code, message)
        if release_quota:
            self.counts_toward_quota = False

    def mark_outcome_unknown(self, *, reason: str) -> None:
        """Sent, with no usable answer: never resent on its own, still counted."""
        self._set(_outcome_unknown(reason))

    def complete(self) -> None:
        self._finish(RequestStatus.COMPLETED, "", "")

    def _finish(self, status: RequestStatus, code: str, message: str) -> None:
        self._set(_ended(status, code, message))

    def _set(self, fields: dict) -> None:
        for name, value in fields.items():
            setattr(self, name, value)

    # --- What it is ------------------------------------------------------------

    @property
    def in_flight(self) -> bool:
        return self.status in self.IN_FLIGHT

    @property
    def submit_deadline(self) -> datetime:
        """Not sent by then, it is never sent."""
        return self.created_at + timedelta(seconds=settings.BANANAWEB_SUBMIT_DEADLINE)

    @property
    def poll_deadline(self) -> datetime:
        started = self.submitted_at or self.created_at
        return started + timedelta(seconds=settings.BANANAWEB_POLL_DEADLINE)

    @property
    def can_resubmit(self) -> bool:
        """Only a request that surely made no image, or may not have, is sent anew."""
        return self.status in (RequestStatus.FAILED, RequestStatus.UNKNOWN)

    @property
    def elapsed(self) -> timedelta:
        return (self.finished_at or timezone.now()) - self.created_at

    @property
    def time_to_result(self) -> timedelta | None:
        return self.finished_at - self.created_at if self.finished_at else None

    def know_images(self, images: Iterable["GeneratedImage"]) -> None:
        """Make `images.all()` answer these GeneratedImages without a query, as a
        prefetch would: for images read some other way (or none, when new)."""
        known = self.images.all()
        known._result_cache = list(images)
        known._prefetch_done = True
        self._prefetched_objects_cache = {"images": known}

    @property
    def status_text(self) -> str:
        """The status in plain words, as shown on the card."""
        if self.status == self.Status.IN_PROGRESS and self.upstream_status:
            if self.upstream_status == options.UpstreamStatus.COMPLETED:
                return "Saving the image"
            return f"In progress ({self.upstream_status})"
        return self.get_status_display()


def _image_path(image: "GeneratedImage", filename: str) -> str:
    return f"images/{image.image_request.user_id}/{image.image_request_id}/{filename}"


class GeneratedImageQuerySet(models.QuerySet):
    def for_user(self, user) -> "GeneratedImageQuerySet":
        """The images of the user's requests, less the deleted ones."""
        return self.filter(
            image_request__user=user, image_request__deleted_at__isnull=True
        )

    def visible_to(self, user) -> "GeneratedImageQuerySet":
        """The images of the requests the user may see (ImageRequest's visible_to)."""
        return self.filter(
            image_request__in=ImageRequest.objects.visible_to(user).values("pk")
        )


class GeneratedImage(models.Model):
    image_request = models.ForeignKey(
        ImageRequest, on_delete=models.CASCADE, related_name="images"
    )
    position = models.PositiveSmallIntegerField(default=0)
    source_url = models.URLField(max_length=2000, blank=True)
    file = models.FileField(upload_to=_image_path)
    thumbnail = models.FileField(upload_to=_image_path)
    content_type = models.CharField(max_length=40)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size_bytes = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = GeneratedImageQuerySet.as_manager()

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return f"Image {self.position} of request #{self.image_request_id}"


def _upload_path(upload: "Upload", filename: str) -> str:
    return f"uploads/{upload.user_id}/{filename}"


class UploadQuerySet(models.QuerySet):
    def visible_to(self, user) -> "UploadQuerySet":
        """The user's own pictures, and those a request they may see was made from."""
        if not user.is_authenticated:
            return self.none()
        used = Reference.objects.filter(
            image_request__in=ImageRequest.objects.visible_to(user).values("pk"),
            upload__isnull=False,
        ).values("upload")
        return self.filter(Q(user=user) | Q(pk__in=used))


class Upload(models.Model):
    """A picture someone brought, verified and stored, to edit or use as reference."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads"
    )
    file = models.FileField(upload_to=_upload_path)
    original_name = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=40)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size_bytes = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = UploadQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.original_name or f"Upload #{self.pk}"


class Reference(models.Model):
    """One of our own images a request was made from: an upload, or an earlier
    result. The upstream fetches it by a signed URL (signing.py)."""

    image_request = models.ForeignKey(
        ImageRequest, on_delete=models.CASCADE, related_name="references"
    )
    position = models.PositiveSmallIntegerField(default=0)
    upload = models.ForeignKey(
        Upload, null=True, blank=True, on_delete=models.SET_NULL, related_name="uses"
    )
    image = models.ForeignKey(
        GeneratedImage,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="uses",
    )

    class Meta:
        ordering = ["position", "pk"]
        constraints = [
            # One or the other; both gone only once the source was deleted.
            models.CheckConstraint(
                condition=Q(upload__isnull=True) | Q(image__isnull=True),
                name="reference_one_source",
            )
        ]

    def __str__(self) -> str:
        return f"Reference {self.position} of request #{self.image_request_id}"

    @property
    def source(self) -> "Upload | GeneratedImage | None":
        return self.upload or self.image


# --- Stars and preferences ---------------------------------------------------------


class Star(models.Model):
    """A person's star on a request they can see: theirs alone, whoever's request."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stars"
    )
    image_request = models.ForeignKey(
        ImageRequest, on_delete=models.CASCADE, related_name="stars"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "image_request"], name="star_once_per_user"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} starred #{self.image_request_id}"


class UserPreference(models.Model):
    """What a person chose for themselves in their settings."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference"
    )
    # Blank: the site's default (BANANAWEB_DEFAULT_VISIBILITY).
    default_visibility = models.CharField(
        max_length=7,
        choices=Visibility,
        blank=True,
        help_text="Who can see their new images; empty follows the site's default.",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=_in_choices("default_visibility", Visibility, blank=True),
                name="user_preference_default_visibility_valid",
            )
        ]

    def __str__(self) -> str:
        return f"Preferences of {self.user}"


# --- Task workers ----------------------------------------------------------------


class WorkerHeartbeat(models.Model):
    """A running task worker's last sign of life (`run_worker` beats every few
    seconds); /readyz wants one seen within the last minute."""

    worker_id = models.CharField(max_length=64, unique=True)
    seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"Worker {self.worker_id} seen at {self.seen_at:%H:%M:%S}"
