"""Prompt templates (issue 12): saved starting points with {placeholders}, personal
or shared with the team, picked from a menu on the Generate and Edit forms."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from bananaweb import options
from bananaweb.models import ImageRequest
from bananaweb.prompts import placeholders, services
from bananaweb.prompts.models import PromptTemplate
from tests.factories import ImageRequestFactory, make_image

HTMX = {"HX-Request": "true"}
FAST = options.Model.NANO_BANANA_FAST
PRO = options.Model.NANO_BANANA_PRO
TWO = options.Model.NANO_BANANA_2

pytestmark = pytest.mark.usefixtures("clear_tasks")


def make_template(user, **values) -> PromptTemplate:
    data = {"name": "Cat on a mat", "prompt": "A cat on a mat", "model": FAST}
    return services.prompt_template_create(user=user, **(data | values))


@pytest.fixture
def animal(user) -> PromptTemplate:
    """A template of alice's with two placeholders, on Nano Banana Pro at 16:9, 2K."""
    return make_template(
        user,
        name="Animal somewhere",
        prompt="A {animal} on a {place}, photographed",
        model=PRO,
        aspect_ratio="16:9",
        resolution="2K",
    )


def use_url(prompt_template: PromptTemplate, action: str = "generate", **fill) -> str:
    query = f"?action={action}" + "".join(f"&fill-{k}={v}" for k, v in fill.items())
    return reverse("prompt-template-use", args=[prompt_template.pk]) + query


def fill_url(prompt_template: PromptTemplate, action: str = "generate", **fill) -> str:
    return use_url(prompt_template, action, **fill).replace("/use/", "/fill/")


# --- placeholders, as text -------------------------------------------------------------


def test_placeholders_are_parsed_in_order_each_once():
    found = placeholders.parse("A {animal} on a {place}, a {Animal} again")
    assert [(p.key, p.label, p.count) for p in found] == [
        ("animal", "animal", 2),
        ("place", "place", 1),
    ]


def test_names_may_have_spaces_hyphens_and_any_letters():
    found = placeholders.parse("{hair  colour}, {eye-colour}, {café_name2}")
    assert [p.key for p in found] == ["hair colour", "eye-colour", "café_name2"]
    assert found[0].label == "hair colour"


def test_doubled_braces_are_literal_braces():
    assert placeholders.parse("A sign saying {{hello}}") == []
    filled = placeholders.fill("{{ {thing} }}", {"thing": "cat"})
    assert filled.prompt == "{ cat }"


def test_filling_puts_each_value_everywhere_its_name_is_used():
    filled = placeholders.fill(
        "A {animal} on a {place}; the {Animal} sleeps",
        {"animal": "cat", "place": "mat"},
    )
    assert filled.prompt == "A cat on a mat; the cat sleeps"
    assert filled.missing == [] and filled.notes == []


def test_a_placeholder_without_a_value_stays_as_written_and_is_listed():
    filled = placeholders.fill(
        "A {animal} on a {place}", {"animal": "cat", "place": " "}
    )
    assert filled.prompt == "A cat on a {place}"
    assert [p.key for p in filled.missing] == ["place"]


def test_a_value_for_an_unknown_placeholder_is_left_out_with_a_note():
    filled = placeholders.fill("A {animal}", {"animal": "cat", "colour": "red"})
    assert filled.prompt == "A cat"
    assert filled.notes == [
        (
            "This template has no placeholder “colour” (it may have been changed "
            "since): that value was left out."
        )
    ]


def test_braces_in_a_value_are_not_placeholders():
    filled = placeholders.fill("A {thing}", {"thing": "{place} and }{"})
    assert filled.prompt == "A {place} and }{"


def test_a_value_too_long_is_left_out_with_a_note():
    filled = placeholders.fill("A {thing}", {"thing": "x" * 201})
    assert filled.prompt == "A {thing}"
    assert "at most 200" in filled.notes[0]


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("A {} on a mat", "The prompt has an empty placeholder “{}”"),
        ("A {   } on a mat", "The prompt has an empty placeholder “{   }”"),
        ("A {animal on a mat", "A “{” in the prompt is never closed"),
        ("A {animal {place}}", "A “{” in the prompt is never closed"),
        ("An animal} on a mat", "A “}” in the prompt has no “{” before it"),
        ("A {a.b} here", "“{a.b}” is not a placeholder"),
        ("A {2cats} here", "“{2cats}” is not a placeholder"),
        ("A {" + "x" * 41 + "}", "has a name longer than 40 characters"),
        (
            " ".join(f"{{p{n}}}" for n in range(11)),
            "The prompt has 11 different placeholders; a template can have at most 10.",
        ),
    ],
)
def test_unreadable_placeholders_say_what_is_wrong(prompt, message):
    with pytest.raises(placeholders.PlaceholderError) as raised:
        placeholders.parse(prompt)
    assert message in str(raised.value)


def test_a_name_used_many_times_counts_once_toward_the_limit():
    assert len(placeholders.parse("{a} " * 20)) == 1


# --- saving: the options' rules, names, ownership ------------------------------------------


def test_a_template_is_saved_with_its_options(user):
    saved = make_template(
        user, prompt="A {animal}", model=TWO, aspect_ratio="1:8", resolution="4K"
    )
    saved.refresh_from_db()
    assert (saved.model, saved.aspect_ratio, saved.resolution) == (TWO, "1:8", "4K")
    assert saved.shared is False
    assert [p.key for p in saved.placeholders] == ["animal"]


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        (
            {"model": FAST, "resolution": "2K"},
            "resolution",
            (
                "Nano Banana Fast has a fixed resolution; choose Nano Banana Pro or "
                "Nano Banana 2 to pick one."
            ),
        ),
        (
            {"model": PRO, "aspect_ratio": "1:8"},
            "aspect_ratio",
            "Nano Banana Pro can't make 1:8 images; only Nano Banana 2 can.",
        ),
        ({"model": "nano-banana-9"}, "model", "Choose one of the models"),
        ({"prompt": "   "}, "prompt", "the prompt can't be empty"),
        ({"prompt": "x" * 4001}, "prompt", "the limit is 4,000"),
        ({"prompt": "A {} cat"}, "prompt", "empty placeholder"),
        ({"name": "  "}, "name", "This field cannot be blank."),
    ],
)
def test_a_template_is_checked_against_the_models_options(user, values, field, message):
    with pytest.raises(ValidationError) as raised:
        make_template(user, **values)
    assert any(message in text for text in raised.value.message_dict[field])
    assert not PromptTemplate.objects.exists()


def test_the_database_refuses_options_the_model_does_not_offer(user):
    with pytest.raises(IntegrityError), transaction.atomic():
        PromptTemplate.objects.create(
            user=user, name="x", prompt="x", model=FAST, resolution="4K"
        )


def test_a_name_is_one_template_per_person_in_any_case(user, other_user):
    make_template(user, name="Cat on a mat")
    with pytest.raises(ValidationError) as raised:
        make_template(user, name="CAT ON A MAT ")
    assert raised.value.message_dict["name"] == [
        "You already have a template called “CAT ON A MAT”: choose another name."
    ]
    assert make_template(other_user, name="Cat on a mat").user == other_user


def test_update_renames_and_rechecks(user, animal):
    services.prompt_template_update(prompt_template=animal, name="Beast", model=TWO)
    animal.refresh_from_db()
    assert (animal.name, animal.model) == ("Beast", TWO)
    with pytest.raises(ValidationError):
        services.prompt_template_update(prompt_template=animal, model=FAST)


def test_visibility_own_and_shared_only(user, other_user, animal):
    theirs = make_template(other_user, name="Theirs")
    shared = make_template(other_user, name="Shared", shared=True)
    assert set(PromptTemplate.objects.visible_to(user)) == {animal, shared}
    assert set(PromptTemplate.objects.visible_to(other_user)) == {theirs, shared}
    assert list(PromptTemplate.objects.menu_for(user)) == [animal, shared]


# --- the templates page -----------------------------------------------------------------


def test_the_page_lists_mine_and_the_teams_shared_ones(
    client_logged_in, other_user, animal
):
    make_template(other_user, name="Their secret recipe")
    make_template(other_user, name="Their shared recipe", shared=True)
    response = client_logged_in.get(reverse("prompt-templates"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Animal somewhere" in html and "Their shared recipe" in html
    assert "Their secret recipe" not in html
    assert "Placeholders: animal, place" in html
    # Mine can be changed; theirs only used.
    assert f'href="{reverse("prompt-template-edit", args=[animal.pk])}"' in html
    shared = PromptTemplate.objects.get(name="Their shared recipe")
    assert f'href="{reverse("prompt-template-edit", args=[shared.pk])}"' not in html
    assert f'href="{reverse("prompt-template-delete", args=[shared.pk])}"' not in html
    assert f"{reverse('prompt-template-use', args=[shared.pk])}?action=edit" in html


def test_the_nav_links_to_the_templates(client_logged_in):
    html = client_logged_in.get(reverse("index")).content.decode()
    assert f'href="{reverse("prompt-templates")}"' in html


def test_create_from_the_form(client_logged_in, user):
    response = client_logged_in.post(
        reverse("prompt-template-create"),
        {
            "name": "Portrait",
            "prompt": "A portrait of {person}",
            "model": PRO,
            "aspect_ratio": "3:4",
            "resolution": "4K",
            "shared": "on",
        },
    )
    saved = PromptTemplate.objects.get()
    assert response.status_code == 302
    assert response.url == f"{reverse('prompt-templates')}#template-{saved.pk}"
    assert (saved.user, saved.name, saved.resolution, saved.shared) == (
        user,
        "Portrait",
        "4K",
        True,
    )


def test_an_invalid_template_shows_why_and_keeps_what_was_typed(
    client_logged_in, animal
):
    response = client_logged_in.post(
        reverse("prompt-template-create"),
        {"name": "animal SOMEWHERE", "prompt": "A {cat", "model": FAST},
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert "You already have a template called “animal SOMEWHERE”" in html
    assert "A “{” in the prompt is never closed" in html
    assert "A {cat</textarea>" in html
    assert PromptTemplate.objects.count() == 1


def test_the_form_offers_only_the_chosen_models_options(client_logged_in):
    html = client_logged_in.get(reverse("prompt-template-create")).content.decode()
    assert "Nano Banana Fast has one resolution." in html
    assert 'value="1:8"' not in html
    fragment = client_logged_in.get(
        reverse("prompt-template-options"),
        {"model": TWO, "aspect_ratio": "1:8", "resolution": "4K"},
        headers=HTMX,
    ).content.decode()
    assert '<option value="1:8" selected>' in fragment
    assert '<option value="4K" selected>' in fragment


def test_edit_renames_and_changes_options(client_logged_in, animal):
    response = client_logged_in.post(
        reverse("prompt-template-edit", args=[animal.pk]),
        {"name": "Animal, anywhere", "prompt": animal.prompt, "model": FAST},
    )
    animal.refresh_from_db()
    assert response.status_code == 302
    assert (animal.name, animal.model, animal.aspect_ratio, animal.resolution) == (
        "Animal, anywhere",
        FAST,
        "",
        "",
    )


def test_share_and_unshare(client_logged_in, animal):
    url = reverse("prompt-template-share", args=[animal.pk])
    response = client_logged_in.post(url, {"shared": "1"}, headers=HTMX)
    animal.refresh_from_db()
    assert animal.shared
    assert "Stop sharing" in response.content.decode()
    assert response.content.decode().lstrip().startswith('<li class="template-item"')
    response = client_logged_in.post(url, {"shared": "0"})
    animal.refresh_from_db()
    assert not animal.shared
    assert response.status_code == 302
    assert client_logged_in.post(url, {"shared": "yes"}).status_code == 400


def test_delete_asks_first(client_logged_in, animal):
    url = reverse("prompt-template-delete", args=[animal.pk])
    page = client_logged_in.get(url)
    assert page.status_code == 200 and "Delete the template" in page.content.decode()
    assert PromptTemplate.objects.exists()
    response = client_logged_in.post(url)
    assert response.status_code == 302
    assert not PromptTemplate.objects.exists()


# --- another person's templates ------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["prompt-template-edit", "prompt-template-delete", "prompt-template-share"]
)
@pytest.mark.parametrize("shared", [False, True])
def test_only_the_owner_changes_a_template(client, other_user, animal, name, shared):
    services.prompt_template_set_shared(prompt_template=animal, shared=shared)
    client.force_login(other_user)
    url = reverse(name, args=[animal.pk])
    assert client.get(url).status_code in (404, 405)
    assert client.post(url, {"name": "Mine now", "shared": "0"}).status_code == 404
    animal.refresh_from_db()
    assert (animal.name, animal.shared) == ("Animal somewhere", shared)


@pytest.mark.parametrize("name", ["prompt-template-use", "prompt-template-fill"])
def test_another_persons_personal_template_is_404(client, other_user, animal, name):
    client.force_login(other_user)
    url = reverse(name, args=[animal.pk]) + "?action=generate"
    assert client.get(url).status_code == 404
    assert client.get(url, headers=HTMX).status_code == 404


def test_staff_do_not_see_personal_templates_on_the_site(client, animal, admin_user):
    client.force_login(admin_user)
    assert client.get(use_url(animal), headers=HTMX).status_code == 404
    assert "Animal somewhere" not in client.get(reverse("index")).content.decode()


def test_a_shared_template_is_usable_by_the_team(client, other_user, animal):
    services.prompt_template_set_shared(prompt_template=animal, shared=True)
    client.force_login(other_user)
    response = client.get(use_url(animal, animal="cat"), headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "(shared by alice)" in html
    assert "A cat on a {place}, photographed</textarea>" in html


# --- the menu on the Generate and Edit forms -----------------------------------------------


def test_both_forms_have_the_menu_with_mine_and_the_teams(
    client_logged_in, other_user, animal
):
    make_template(other_user, name="Their secret", prompt="secret")
    team = make_template(other_user, name="Team favourite", shared=True)
    html = client_logged_in.get(reverse("index")).content.decode()
    for action in ("generate", "edit"):
        assert f'id="{action}-templates"' in html
        for prompt_template in (animal, team):
            url = use_url(prompt_template, action)
            assert (
                f'href="{url}" hx-get="{url}" hx-target="#{action}-templates"' in html
            )
        assert f'id="{action}-save-template"' in html
    assert html.count("Start from a template") == 2
    assert "shared by bob" in html
    assert "Their secret" not in html
    # Mine first, then the team's.
    assert html.index("Animal somewhere") < html.index("Team favourite")


def test_the_menu_says_how_to_make_a_first_template(client_logged_in):
    html = client_logged_in.get(reverse("index")).content.decode()
    assert "No templates yet" in html


def test_the_menu_stays_after_a_request_is_made(client_logged_in, animal):
    response = client_logged_in.post(
        reverse("request-create"),
        {"action": "generate", "prompt": "A banana", "model": FAST},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert 'id="generate-templates"' in response.content.decode()


def test_picking_fills_the_forms_fields_out_of_band(client_logged_in, animal):
    response = client_logged_in.get(use_url(animal, "edit"), headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert response["Vary"].count("HX-Request")
    # The picker block, swapped where it was, now with a field per placeholder.
    assert html.lstrip().startswith('<div class="template-picker" id="edit-templates">')
    assert 'for="edit-placeholder-1">animal</label>' in html
    assert 'for="edit-placeholder-2">place</label>' in html
    assert 'name="fill-animal"' in html and 'name="fill-place"' in html
    # Not part of the request form: Enter in one doesn't send a request.
    assert 'form="edit-template-values"' in html
    assert "Still to fill in: “animal”, “place”." in html
    # The prompt, model and option fields replace theirs in the edit form.
    assert 'id="edit-prompt"' in html and 'id="edit-model"' in html
    assert html.count('hx-swap-oob="true"') == 2
    assert "A {animal} on a {place}, photographed</textarea>" in html
    assert f'<option value="{PRO}" selected>' in html
    assert 'hx-swap-oob="innerHTML:#edit-form .option-fields"' in html
    assert '<option value="16:9" selected>' in html
    assert '<option value="2K" selected>' in html


def test_picking_a_template_without_placeholders_fills_the_form_only(
    client_logged_in, user
):
    plain = make_template(user, name="Plain", prompt="A {{literal}} banana")
    html = client_logged_in.get(use_url(plain), headers=HTMX).content.decode()
    assert "data-placeholder" not in html
    assert "Filled in from the template <strong>Plain</strong>" in html
    assert "A {literal} banana</textarea>" in html


def test_typing_a_value_rebuilds_the_prompt(client_logged_in, animal):
    response = client_logged_in.get(
        fill_url(animal, animal="red fox", place="hill"), headers=HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="generate-prompt"' in html
    assert "A red fox on a hill, photographed</textarea>" in html
    assert 'id="generate-template-status" hx-swap-oob="innerHTML"' in html
    assert "Every placeholder is filled in" in html


def test_a_value_left_empty_stays_a_placeholder_and_is_named(client_logged_in, animal):
    html = client_logged_in.get(
        fill_url(animal, animal="cat", place=""), headers=HTMX
    ).content.decode()
    assert "A cat on a {place}, photographed</textarea>" in html
    assert "Still to fill in: “place”." in html


def test_an_unknown_placeholder_is_left_out_and_said(client_logged_in, animal):
    html = client_logged_in.get(
        fill_url(animal, animal="cat", place="mat", colour="red"), headers=HTMX
    ).content.decode()
    assert "A cat on a mat, photographed</textarea>" in html
    assert "This template has no placeholder “colour”" in html


def test_a_duplicated_placeholder_is_one_field(client_logged_in, user):
    twice = make_template(user, name="Twice", prompt="A {animal} next to a {Animal}")
    html = client_logged_in.get(use_url(twice), headers=HTMX).content.decode()
    assert html.count("data-placeholder") == 1
    assert "Used 2 times in the prompt: this value goes in each." in html
    html = client_logged_in.get(
        fill_url(twice, animal="dog"), headers=HTMX
    ).content.decode()
    assert "A dog next to a dog</textarea>" in html


def test_a_filled_prompt_too_long_is_said(client_logged_in, user):
    long = make_template(user, name="Long", prompt="x" * 3990 + " {thing}")
    html = client_logged_in.get(
        fill_url(long, thing="y" * 50), headers=HTMX
    ).content.decode()
    assert "the limit is 4,000" in html


# --- without JavaScript ----------------------------------------------------------------------


def test_without_js_a_template_without_placeholders_opens_the_form_filled(
    client_logged_in, user
):
    plain = make_template(
        user, name="Plain", prompt="A plain banana", model=TWO, aspect_ratio="4:1"
    )
    response = client_logged_in.get(use_url(plain, "edit"))
    assert response.status_code == 302
    url = urlsplit(response.url)
    assert (url.path, url.fragment) == (reverse("index"), "edit-form")
    assert parse_qs(url.query) == {
        "action": ["edit"],
        "prompt": ["A plain banana"],
        "model": [TWO],
        "aspect_ratio": ["4:1"],
    }
    html = client_logged_in.get(response.url).content.decode()
    assert "A plain banana</textarea>" in html
    assert '<option value="4:1" selected>' in html


def test_without_js_placeholders_are_asked_for_first(client_logged_in, animal):
    page = client_logged_in.get(use_url(animal))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'for="use-placeholder-1">animal</label>' in html
    assert "Fill in the Generate form" in html
    assert "field__error" not in html

    missing = client_logged_in.get(use_url(animal, animal="cat") + "&go=1")
    assert missing.status_code == 422
    assert "Fill in “place”: the template needs a value for each placeholder." in (
        missing.content.decode()
    )

    done = client_logged_in.get(use_url(animal, animal="cat", place="mat") + "&go=1")
    assert done.status_code == 302
    query = parse_qs(urlsplit(done.url).query)
    assert query["prompt"] == ["A cat on a mat, photographed"]
    assert (query["model"], query["aspect_ratio"], query["resolution"]) == (
        [PRO],
        ["16:9"],
        ["2K"],
    )


# --- save as template --------------------------------------------------------------------------


def test_save_as_template_from_a_request(client_logged_in, user):
    image_request = ImageRequestFactory(
        user=user,
        prompt="A pelican riding a bicycle",
        model=TWO,
        aspect_ratio="21:9",
        resolution="1K",
        status=ImageRequest.Status.COMPLETED,
    )
    make_image(image_request)
    detail = client_logged_in.get(reverse("request-detail", args=[image_request.pk]))
    url = f"{reverse('prompt-template-create')}?request={image_request.pk}"
    assert f'href="{url}"' in detail.content.decode()

    html = client_logged_in.get(url).content.decode()
    assert 'value="A pelican riding a bicycle"' in html  # the suggested name
    assert "A pelican riding a bicycle</textarea>" in html
    assert f'<option value="{TWO}" selected>' in html
    assert '<option value="21:9" selected>' in html
    assert '<option value="1K" selected>' in html
    assert not PromptTemplate.objects.exists()  # nothing saved until the form is sent


def test_save_as_template_from_another_persons_private_request_is_404(
    client_logged_in, other_user
):
    theirs = ImageRequestFactory(
        user=other_user,
        prompt="Private idea",
        visibility=ImageRequest.Visibility.PRIVATE,
    )
    url = f"{reverse('prompt-template-create')}?request={theirs.pk}"
    assert client_logged_in.get(url).status_code == 404
    bad = f"{reverse('prompt-template-create')}?request=abc"
    assert client_logged_in.get(bad).status_code == 404


def test_save_as_template_from_a_teammates_team_visible_request(
    client_logged_in, user, other_user
):
    theirs = ImageRequestFactory(
        user=other_user,
        prompt="A team idea",
        model=PRO,
        visibility=ImageRequest.Visibility.TEAM,
    )
    url = f"{reverse('prompt-template-create')}?request={theirs.pk}"
    html = client_logged_in.get(url).content.decode()
    assert "A team idea</textarea>" in html
    response = client_logged_in.post(
        reverse("prompt-template-create"),
        {"name": "Their idea, mine now", "prompt": "A team idea", "model": PRO},
    )
    assert response.status_code == 302
    assert PromptTemplate.objects.get().user == user


def test_save_as_template_from_the_forms_current_values(client_logged_in):
    values = {
        "action": "generate",
        "prompt": "A {colour} balloon " + "é" * 3000,  # too long for an address
        "model": PRO,
        "aspect_ratio": "5:4",
        "resolution": "4K",
        "idempotency_key": "abc",
    }
    response = client_logged_in.post(reverse("prompt-template-draft"), values)
    assert response.status_code == 302
    assert response.url == f"{reverse('prompt-template-create')}?draft"
    html = client_logged_in.get(response.url).content.decode()
    assert "A {colour} balloon éé" in html
    assert '<option value="5:4" selected>' in html
    assert "Placeholders, asked for when the template is used: colour." in html
    assert not PromptTemplate.objects.exists()

    saved = client_logged_in.post(
        reverse("prompt-template-create"),
        values | {"name": "Balloon"},
    )
    assert saved.status_code == 302
    assert PromptTemplate.objects.get().prompt == values["prompt"]
    # The draft is gone once saved.
    assert "balloon" not in client_logged_in.get(response.url).content.decode()


def test_save_as_template_from_the_form_with_htmx_opens_the_form_page(client_logged_in):
    response = client_logged_in.post(
        reverse("prompt-template-draft"),
        {"prompt": "A kite", "model": FAST},
        headers=HTMX,
    )
    assert response["HX-Redirect"] == f"{reverse('prompt-template-create')}?draft"


# --- the admin ---------------------------------------------------------------------------------


def test_templates_are_in_the_admin(client, admin_user, animal):
    client.force_login(admin_user)
    response = client.get(reverse("admin:prompts_prompttemplate_changelist"))
    assert response.status_code == 200
    assert "Animal somewhere" in response.content.decode()
    change = client.get(
        reverse("admin:prompts_prompttemplate_change", args=[animal.pk])
    )
    assert change.status_code == 200
