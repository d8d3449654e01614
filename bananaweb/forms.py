"""The Generate and Edit forms, and how every form field is rendered.

Field names are the API's; the rules live in options.py.
"""

import uuid

from django import forms
from django.forms.renderers import TemplatesSetting
from django.urls import reverse_lazy

from bananaweb import options
from bananaweb.models import ImageRequest


class FormRenderer(TemplatesSetting):
    """Django's form templates, and one field template for the whole site."""

    field_template_name = "forms/field.html"


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


class ImageRequestForm(forms.ModelForm):
    """Offers only the aspect ratios and resolutions the chosen model accepts."""

    image_urls = ImageUrlsField(required=False, label="Image URLs")
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
        self.fields["idempotency_key"].initial = uuid.uuid4().hex
        self.fields["prompt"].widget.attrs.update(
            maxlength=options.PROMPT_MAX_LENGTH, required=True
        )
        self.fields["model"].choices = options.Model.choices
        self.fields["model"].required = False  # the API's default applies

        spec = options.spec_for(self.chosen_model)
        # A choice carried over from another model stays only if this one offers it.
        for name, offered in (
            ("aspect_ratio", spec.aspect_ratios),
            ("resolution", spec.resolutions),
        ):
            if self.initial.get(name) not in offered:
                self.initial[name] = ""
        default = [("", "Model default")]
        self.fields["aspect_ratio"].widget.choices = default + [
            (ratio, ratio) for ratio in spec.aspect_ratios
        ]
        resolution = self.fields["resolution"]
        if spec.resolutions:
            resolution.widget.choices = default + [(r, r) for r in spec.resolutions]
        else:
            resolution.widget.choices = [("", "Fixed")]
            resolution.widget.attrs["disabled"] = True
            model_label = options.Model(self.chosen_model).label
            resolution.help_text = f"{model_label} has one resolution."

        image_urls = self.fields["image_urls"]
        if action == options.Action.EDIT:
            image_urls.help_text = "One per line: the images to edit, first one first."
            image_urls.widget.attrs["required"] = True
        else:
            image_urls.help_text = "Optional reference images, one per line."

    @property
    def chosen_model(self) -> str:
        value = self["model"].value() or options.DEFAULT_MODEL
        return value if value in options.MODELS else options.DEFAULT_MODEL

    def clean_action(self) -> str:
        return self.kind
