"""The Generate and Edit forms, and how every form field is rendered.

Field names are the API's; the rules live in options.py.
"""

import uuid

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.forms.renderers import TemplatesSetting
from django.urls import reverse_lazy

from bananaweb import options
from bananaweb.models import GeneratedImage, ImageRequest, Upload


class FormRenderer(TemplatesSetting):
    """Django's form templates, and one field template for the whole site."""

    field_template_name = "forms/field.html"


def offer_model_options(form: forms.Form, model: str) -> None:
    """The aspect-ratio and resolution fields offer only what `model` takes; a
    choice carried over from another model stays only if this one offers it."""
    spec = options.spec_for(model)
    for name, offered in (
        ("aspect_ratio", spec.aspect_ratios),
        ("resolution", spec.resolutions),
    ):
        if form.initial.get(name) not in offered:
            form.initial[name] = ""
    default = [("", "Model default")]
    form.fields["aspect_ratio"].widget.choices = default + [
        (ratio, ratio) for ratio in spec.aspect_ratios
    ]
    resolution = form.fields["resolution"]
    if spec.resolutions:
        resolution.widget.choices = default + [(r, r) for r in spec.resolutions]
    else:
        resolution.widget.choices = [("", "Fixed")]
        resolution.widget.attrs["disabled"] = True
        resolution.help_text = f"{options.Model(model).label} has one resolution."


class ImageUrlsField(forms.Field):
    """One URL per line (or separated by spaces) in a textarea; a list in Python."""

    widget = forms.Textarea(
        attrs={"rows": 2, "spellcheck": "false", "autocomplete": "off"}
    )

    def to_python(self, value) -> list[str]:
        if isinstance(value, list):
            return [str(url).strip() for url in value if str(url).strip()]
        return (value or "").split()

    def prepare_value(self, value) -> str:
        return "\n".join(value) if isinstance(value, list) else (value or "")


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (Django's "Uploading multiple files" pattern)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/*"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None) -> list:
        single_file_clean = super().clean
        if isinstance(data, (list, tuple)):
            return [single_file_clean(one, initial) for one in data]
        return [single_file_clean(data, initial)] if data else []


# A reference names one of our own images: "12" a result (GeneratedImage 12),
# "upload-3" a picture the user brought (Upload 3).
UPLOAD_PREFIX = "upload-"
NOT_YOURS = (
    "One of the chosen images is not one of yours, nor shared with you "
    "(or was deleted since)."
)


def reference_token(source: Upload | GeneratedImage) -> str:
    return (
        f"{UPLOAD_PREFIX}{source.pk}" if isinstance(source, Upload) else str(source.pk)
    )


class ReferencesField(forms.Field):
    """Our own images chosen as references, as tokens (repeated hidden inputs).
    Whether the user may use each (theirs, or one they can see) is the view's to
    check."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> list[str]:
        values = value if isinstance(value, (list, tuple)) else [value] if value else []
        tokens = [str(token).strip() for token in values if str(token).strip()]
        if any(parse_reference(token) is None for token in tokens):
            raise forms.ValidationError(NOT_YOURS)
        return tokens


def parse_reference(token: str) -> tuple[type[Upload | GeneratedImage], int] | None:
    """(the model, the id) a token names, or None when it names nothing."""
    model, digits = GeneratedImage, token
    if token.startswith(UPLOAD_PREFIX):
        model, digits = Upload, token.removeprefix(UPLOAD_PREFIX)
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 12):
        return None
    return model, int(digits)


def uploads_refused() -> str:
    """Why pictures can't be sent, or "" when they can: the real upstream fetches
    them from BANANAWEB_PUBLIC_URL, so it must be set (the simulator works without)."""
    if settings.BANANAWEB_PUBLIC_URL or settings.MOUNTSEA_SIMULATED:
        return ""
    return (
        "Pictures can't be sent yet: the image service fetches them from bananaweb, "
        "so an administrator must set BANANAWEB_PUBLIC_URL to the address at which "
        "the image service can reach bananaweb (for example https://bananaweb.example.com)."
    )


# Who can see a request, in the words the forms use.
VISIBILITY_CHOICES = [
    (ImageRequest.Visibility.PRIVATE, "Only me (private)"),
    (ImageRequest.Visibility.TEAM, "The team"),
]
VISIBILITY_HELP = "Staff can see every image. You can change it later."


# The fields whose check constraints (choices, options that fit the model) the
# model's clean() applies from options.py.
OPTION_FIELDS = frozenset({"action", "model", "aspect_ratio", "resolution"})


class ImageRequestForm(forms.ModelForm):
    """Offers only the aspect ratios and resolutions the chosen model accepts."""

    image_urls = ImageUrlsField(required=False, label="Image URLs")
    uploads = MultipleFileField(required=False, label="Pictures")
    references = ReferencesField(required=False)
    count = forms.IntegerField(
        required=False,
        initial=1,
        min_value=1,
        label="How many",
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    # Not sent (a script, an old page): the user's default.
    visibility = forms.ChoiceField(
        choices=VISIBILITY_CHOICES,
        required=False,
        label="Who can see it",
        help_text=VISIBILITY_HELP,
    )
    # A new key for every form shown: sending the same form twice (a double click,
    # a reload after POST, a duplicated tab) makes one request.
    idempotency_key = forms.CharField(
        required=False, max_length=100, widget=forms.HiddenInput
    )

    class Meta:
        model = ImageRequest
        fields = [
            "action",
            "prompt",
            "model",
            "aspect_ratio",
            "resolution",
            "image_urls",
        ]
        widgets = {
            "action": forms.HiddenInput,
            "prompt": forms.Textarea(attrs={"rows": 3}),
            # Choosing a model fetches the option fields it offers.
            "model": forms.Select(
                attrs={
                    "hx-get": reverse_lazy("request-options"),
                    "hx-include": "closest form",
                    "hx-target": "next .option-fields",
                    "hx-swap": "outerHTML",
                    "hx-trigger": "change",
                }
            ),
        }
        labels = {"aspect_ratio": "Aspect ratio"}

    def __init__(self, *args, action: str = options.Action.GENERATE, **kwargs):
        kwargs.setdefault("auto_id", f"{action}-%s")
        kwargs["initial"] = {"action": action, **(kwargs.get("initial") or {})}
        super().__init__(*args, **kwargs)
        self.kind = action
        self.model_count = len(options.MODELS)
        self.prefilled = False  # filled from a link ("Edit this image", a template)
        self.fields["idempotency_key"].initial = uuid.uuid4().hex
        self.fields["prompt"].widget.attrs.update(
            maxlength=options.PROMPT_MAX_LENGTH, required=True
        )
        self.fields["model"].choices = options.Model.choices
        self.fields["model"].required = False  # the API's default applies

        offer_model_options(self, self.chosen_model)

        image_urls = self.fields["image_urls"]
        if action == options.Action.EDIT:
            image_urls.help_text = (
                "One per line, beside or instead of pictures: the images to edit, "
                "first one first."
            )
            del self.fields["count"]
        else:
            image_urls.help_text = "Optional reference images, one per line."
            maximum = settings.BANANAWEB_MAX_VARIATIONS
            count = self.fields["count"]
            count.max_value = maximum
            count.validators.append(MaxValueValidator(maximum))
            count.widget.attrs.update(min=1, max=maximum)
            count.help_text = f"Up to {maximum}: one request each."

        self.uploads_refused = uploads_refused()
        uploads = self.fields["uploads"]
        if self.uploads_refused:
            uploads.widget.attrs["disabled"] = True
            uploads.help_text = self.uploads_refused
        else:
            uploads.help_text = (
                f"{options.MAX_IMAGE_BYTES // 2**20} MB each. Every model "
                f"takes up to {settings.BANANAWEB_MAX_IMAGE_URLS} images a request, "
                "pictures and image URLs together."
            )
        # Our own images chosen as references, as (token, image) pairs to show:
        # the view resolves them (only the user's own).
        self.chosen_references: list[tuple[str, Upload | GeneratedImage]] = []

    @property
    def chosen_model(self) -> str:
        value = self["model"].value() or options.DEFAULT_MODEL
        return value if value in options.MODELS else options.DEFAULT_MODEL

    def clean_action(self) -> str:
        return self.kind

    def clean_count(self) -> int:
        return self.cleaned_data.get("count") or 1

    def validate_constraints(self) -> None:
        """The model's check constraints, but for those on the options: its clean()
        already applied their very rules (options.option_errors), and checking
        them again would cost a query each. The database still enforces them."""
        exclude = self._get_validation_exclusions() | OPTION_FIELDS
        try:
            self.instance.validate_constraints(exclude=exclude)
        except ValidationError as error:
            self._update_errors(error)

    def clean(self) -> dict:
        cleaned = super().clean()
        # The model's rules count pictures and URLs together.
        self.instance.pending_references = len(cleaned.get("uploads") or []) + len(
            cleaned.get("references") or []
        )
        if self.uploads_refused and (
            cleaned.get("uploads") or cleaned.get("references")
        ):
            self.add_error("uploads", self.uploads_refused)
        return cleaned


class PreferencesForm(forms.Form):
    """A person's settings."""

    default_visibility = forms.ChoiceField(
        choices=VISIBILITY_CHOICES,
        label="Who can see your new images",
        help_text="The choice the Generate and Edit forms start with, and the one "
        "every request made through the API takes. Staff can see every image.",
    )
