from django import forms

from bananaweb.gateway.models import ApiToken


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label="Token name",
        max_length=ApiToken._meta.get_field("name").max_length,
        help_text="What uses it, e.g. “nightly render script” or “my laptop”.",
    )
