"""The Generate and Edit forms. Field names are the API's; the rules live in options.py."""

from django import forms

from bananaweb import options
from bananaweb.models import ImageRequest


class ImageUrlsField(forms.Field):
    """One URL per line (or separated by spaces) in a textarea; a list in Python."""

    widget = forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "autocomplete": "off"})

    def to_python(self, value) -> list[str]:
        if isinstance(value, list):
            return [str(url).strip() for url in value if str(url).strip()]
        return (value or "").split()

    def prepare_value(self, value) -> str:
        return "\n".join(value) if isinstance(value, list) else (value or "")


class ImageRequestForm(forms.ModelForm):
    """Offers only the aspect ratios and resolutions the chosen model accepts."""

    image_urls = ImageUrlsField(required=False, label="Image URLs")

    class Meta:
        model = ImageRequest
        fields = ["action", "prompt", "model", "aspect_ratio", "resolution", "image_urls"]
        widgets = {
            "action": forms.HiddenInput,
            "prompt": forms.Textarea(attrs={"rows": 3}),
        }
        labels = {"aspect_ratio": "Aspect ratio"}

    def __init__(self, *args, action: str = options.Action.GENERATE, **kwargs):
        kwargs.setdefault("auto_id", f"{action}-%s")
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("action", action)
        super().__init__(*args, **kwargs)
        self.kind = action
        self.fields["prompt"].widget.attrs.update(maxlength=options.PROMPT_MAX_LENGTH, required=True)
        self.fields["model"].choices = options.Model.choices
        self.fields["model"].required = False  # the API's default applies
        spec = options.spec_for(self.chosen_model)
        self.fields["aspect_ratio"].widget.choices = [("", "Model default")] + [(r, r) for r in spec.aspect_ratios]
        self.fields["resolution"].widget.choices = [("", "Model default")] + [(r, r) for r in spec.resolutions]
        self.resolution_fixed = not spec.resolutions
        if self.resolution_fixed:
            self.fields["resolution"].widget.attrs["disabled"] = True
        if action == options.Action.EDIT:
            self.fields["image_urls"].help_text = "One per line: the images to edit, first one first."
            self.fields["image_urls"].widget.attrs["required"] = True
        else:
            self.fields["image_urls"].help_text = "Optional reference images, one per line."

    @property
    def chosen_model(self) -> str:
        value = self["model"].value() or options.DEFAULT_MODEL
        return value if value in options.MODELS else options.DEFAULT_MODEL

    def clean_action(self) -> str:
        return self.kind
