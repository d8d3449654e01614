from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from bananaweb.team.models import Collection, Role, ShareLink
from bananaweb.team.services import SHARE_LINK_DEFAULT_DAYS

GROUP_PREFIX = "group:"
USER_PREFIX = "user:"


class CollectionForm(forms.ModelForm):
    class Meta:
        model = Collection
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"description": "Optional: what it gathers, and what for."}


class MemberForm(forms.Form):
    """A user or a group, by name, and the role they get."""

    who = forms.CharField(
        label="User or group",
        max_length=150,
        help_text="A username, or a group's name (everyone in it).",
    )
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.VIEWER)

    def clean_who(self) -> tuple:
        """(user, None) or (None, group)."""
        name = self.cleaned_data["who"].strip()
        users = get_user_model().objects.filter(is_active=True)
        if name.startswith(GROUP_PREFIX):
            users, name = users.none(), name.removeprefix(GROUP_PREFIX).strip()
            groups = Group.objects.filter(name=name)
        elif name.startswith(USER_PREFIX):
            name = name.removeprefix(USER_PREFIX).strip()
            groups = Group.objects.none()
        else:
            groups = Group.objects.filter(name=name)
        user = users.filter(**{get_user_model().USERNAME_FIELD: name}).first()
        group = groups.first()
        if user and group:
            raise forms.ValidationError(
                f"Both a user and a group are called “{name}”: write "
                f"“{USER_PREFIX}{name}” or “{GROUP_PREFIX}{name}”."
            )
        if not user and not group:
            raise forms.ValidationError(f"No user or group is called “{name}”.")
        return user, group


class AddToCollectionForm(forms.Form):
    """Images (already checked by the view) go to a collection, or to a new one."""

    collection = forms.IntegerField(required=False, widget=forms.RadioSelect)
    name = forms.CharField(
        label="Name of the new collection",
        required=False,
        max_length=Collection._meta.get_field("name").max_length,
    )
    consent = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean(self) -> dict:
        data = super().clean()
        name = data.get("name", "").strip()
        if data.get("collection") is None and not name:
            raise forms.ValidationError(
                "Choose a collection, or name a new one.", code="required"
            )
        if data.get("collection") is not None and name:
            raise forms.ValidationError(
                f"Choose “A new collection” to make one named “{name}”, or clear "
                "the name to add to the collection chosen.",
                code="ambiguous",
            )
        return data


class ShareLinkForm(forms.Form):
    show_prompts = forms.BooleanField(
        label="Show the prompts",
        required=False,
        help_text=ShareLink._meta.get_field("show_prompts").help_text,
    )
    show_details = forms.BooleanField(
        label="Show the collection's name and description",
        required=False,
    )

    def __init__(self, *args, collection: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        most = settings.BANANAWEB_SHARE_LINK_MAX_DAYS
        # The most is a setting: the field is made with it.
        self.fields = {
            "days": forms.IntegerField(
                label="Expires after (days)",
                initial=min(SHARE_LINK_DEFAULT_DAYS, most),
                min_value=1,
                max_value=most,
                help_text=f"From 1 to {most}. Anyone with the link sees what it "
                "shows until then, without signing in, unless you revoke it.",
            ),
            **self.fields,
        }
        if not collection:
            del self.fields["show_details"]
