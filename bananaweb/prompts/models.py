"""Prompt templates: saved starting points for the Generate and Edit forms."""

from functools import cached_property

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Case, Q, When
from django.db.models.functions import Lower
from django.utils import timezone

from bananaweb import options
from bananaweb.models import options_fit_model
from bananaweb.prompts import placeholders as placeholder_syntax

# The option fields a template keeps, with the API's names (as ImageRequest's).
OPTION_FIELDS = ("model", "aspect_ratio", "resolution")


class PromptTemplateQuerySet(models.QuerySet):
    def for_user(self, user) -> "PromptTemplateQuerySet":
        """The user's own: the only ones they may change."""
        return self.filter(user=user)

    def visible_to(self, user) -> "PromptTemplateQuerySet":
        """The user's own and everyone's shared ones: what they may use."""
        return self.filter(Q(user=user) | Q(shared=True))

    def shared_by_others(self, user) -> "PromptTemplateQuerySet":
        """The team's shared templates, the user's own left out."""
        return self.filter(shared=True).exclude(user=user)

    def by_name(self) -> "PromptTemplateQuerySet":
        return self.order_by(Lower("name"), "pk")

    def menu_for(self, user) -> "PromptTemplateQuerySet":
        """What the request forms' menu offers: the user's own first, then the
        team's shared ones, each by name."""
        return (
            self.visible_to(user)
            .select_related("user")
            .order_by(Case(When(user=user, then=0), default=1), Lower("name"), "pk")
        )


class PromptTemplate(models.Model):
    """A name, a prompt with optional {placeholders}, and the options to use with
    it; its owner's alone, or shared with the team (read-only to them)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="prompt_templates",
    )
    name = models.CharField(max_length=100)
    prompt = models.TextField(max_length=options.PROMPT_MAX_LENGTH)
    model = models.CharField(
        max_length=20, choices=options.Model, default=options.DEFAULT_MODEL
    )
    aspect_ratio = models.CharField(
        max_length=5, choices=options.AspectRatio, blank=True
    )
    resolution = models.CharField(max_length=2, choices=options.Resolution, blank=True)
    shared = models.BooleanField(
        "shared with the team",
        default=False,
        help_text="Everyone signed in can see and use it; only you can change it.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PromptTemplateQuerySet.as_manager()

    class Meta:
        ordering = [Lower("name"), "pk"]
        verbose_name = "prompt template"
        constraints = [
            models.UniqueConstraint(
                "user",
                Lower("name"),
                name="prompt_template_name_unique_per_user",
                violation_error_message="Its owner has a template of that name already.",
            ),
            models.CheckConstraint(
                condition=Q(model__in=options.Model.values),
                name="prompt_template_model_valid",
            ),
            models.CheckConstraint(
                condition=options_fit_model(),
                name="prompt_template_options_fit_model",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """The options' rules (options.py) and readable placeholders; a name the
        owner hasn't used yet."""
        errors = {
            field: message
            for field, message in options.option_errors(
                prompt=self.prompt,
                action=options.Action.GENERATE,
                model=self.model,
                aspect_ratio=self.aspect_ratio,
                resolution=self.resolution,
            ).items()
            if field in ("prompt", *OPTION_FIELDS)
        }
        if "prompt" not in errors:
            try:
                placeholder_syntax.parse(self.prompt)
            except placeholder_syntax.PlaceholderError as exc:
                errors["prompt"] = str(exc)
        if (
            self.user_id
            and self.name
            and PromptTemplate.objects.for_user(self.user_id)
            .filter(name__iexact=self.name)
            .exclude(pk=self.pk)
            .exists()
        ):
            errors["name"] = (
                f"You already have a template called “{self.name}”: choose another "
                "name."
            )
        if errors:
            raise ValidationError(errors)

    # (The module is imported as placeholder_syntax: this is the template's own list.)
    @cached_property
    def placeholders(self) -> list[placeholder_syntax.Placeholder]:
        """Its placeholders, each once, in order (none for an unreadable prompt,
        which clean() never lets through)."""
        try:
            return placeholder_syntax.parse(self.prompt)
        except placeholder_syntax.PlaceholderError:
            return []

    def fill(self, values: dict[str, str]) -> placeholder_syntax.Filled:
        return placeholder_syntax.fill(self.prompt, values)

    def option_values(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in OPTION_FIELDS}
