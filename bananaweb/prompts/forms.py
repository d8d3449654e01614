"""The template form: the request forms' option rules (options.py), a name, and
whether the team may use it."""

from django import forms
from django.urls import reverse_lazy

from bananaweb import options
from bananaweb.forms import offer_model_options
from bananaweb.prompts import placeholders
from bananaweb.prompts.models import PromptTemplate

PROMPT_HELP = (
    "Write {name} where a value goes in, e.g. “A {animal} on a {place}”: using the "
    "template asks for each. For a literal brace, write {{ or }}."
)


class PromptTemplateForm(forms.ModelForm):
    """Offers only the aspect ratios and resolutions the chosen model accepts."""

    class Meta:
        model = PromptTemplate
        fields = ["name", "prompt", "model", "aspect_ratio", "resolution", "shared"]
        widgets = {
            "prompt": forms.Textarea(attrs={"rows": 4}),
            # Choosing a model fetches the option fields it offers.
            "model": forms.Select(
                attrs={
                    "hx-get": reverse_lazy("prompt-template-options"),
                    "hx-include": "closest form",
                    "hx-target": "next .option-fields",
                    "hx-swap": "outerHTML",
                    "hx-trigger": "change",
                }
            ),
        }
        labels = {"aspect_ratio": "Aspect ratio", "shared": "Share with the team"}
        help_texts = {"prompt": PROMPT_HELP}

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "template-%s")
        super().__init__(*args, **kwargs)
        self.fields["name"].widget.attrs.update(autocomplete="off")
        self.fields["prompt"].widget.attrs.update(
            maxlength=options.PROMPT_MAX_LENGTH, required=True
        )
        self.fields["model"].choices = options.Model.choices
        self.fields["model"].required = False  # the API's default applies
        offer_model_options(self, self.chosen_model)

    @property
    def chosen_model(self) -> str:
        value = self["model"].value() or options.DEFAULT_MODEL
        return value if value in options.MODELS else options.DEFAULT_MODEL

    def clean_model(self) -> str:
        return self.cleaned_data.get("model") or options.DEFAULT_MODEL

    @property
    def placeholder_names(self) -> list[str]:
        """The placeholders the prompt as typed has (none while it can't be read)."""
        try:
            return [p.label for p in placeholders.parse(self["prompt"].value() or "")]
        except placeholders.PlaceholderError:
            return []
