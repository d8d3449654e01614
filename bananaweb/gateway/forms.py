import uuid

from django import forms

from bananaweb.gateway.models import ApiToken


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label="Token name",
        max_length=ApiToken._meta.get_field("name").max_length,
        help_text="What uses it, e.g. “nightly render script” or “my laptop”.",
    )
    # A new key for every form shown: a reload that posts it again makes no
    # second token.
    form_key = forms.CharField(required=False, max_length=100, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["form_key"].initial = uuid.uuid4().hex
