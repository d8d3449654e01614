"""The writes to prompt templates. Pages check ownership (`for_user`) before
calling these; the admin calls them too."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from bananaweb.prompts.models import PromptTemplate

EDITABLE = ("name", "prompt", "model", "aspect_ratio", "resolution", "shared")


def _save(prompt_template: PromptTemplate) -> PromptTemplate:
    prompt_template.name = prompt_template.name.strip()
    # The name's uniqueness is clean()'s, with a message naming it; the
    # constraint is the backstop for two saves at once.
    prompt_template.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            prompt_template.save()
    except IntegrityError as exc:
        raise ValidationError(
            {"name": f"You already have a template called “{prompt_template.name}”."}
        ) from exc
    return prompt_template


def prompt_template_create(
    *,
    user,
    name: str,
    prompt: str,
    model: str,
    aspect_ratio: str = "",
    resolution: str = "",
    shared: bool = False,
) -> PromptTemplate:
    """A new template of the user's. Raises ValidationError, by field."""
    return _save(
        PromptTemplate(
            user=user,
            name=name,
            prompt=prompt,
            model=model,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            shared=shared,
        )
    )


def prompt_template_update(
    *, prompt_template: PromptTemplate, **changes
) -> PromptTemplate:
    """Change (rename, rewrite, share or unshare) a template. Raises ValidationError."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise TypeError(f"Not a template's field: {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        setattr(prompt_template, name, value)
    return _save(prompt_template)


def prompt_template_set_shared(
    *, prompt_template: PromptTemplate, shared: bool
) -> None:
    """Share the template with the team, or make it personal again."""
    prompt_template.shared = shared
    prompt_template.save(update_fields=["shared", "updated_at"])


def prompt_template_delete(*, prompt_template: PromptTemplate) -> None:
    prompt_template.delete()
