"""The composer and working from results (issue 11), through the views: pictures
uploaded beside image URLs, our own images as references, variations and every
model, run again, use as template, and lineage on the detail page."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from bananaweb import options, services
from bananaweb.models import ImageRequest, Reference, Upload
from tests.factories import ImageRequestFactory, make_image, make_upload, png_bytes

Status = ImageRequest.Status
HTMX = {"HX-Request": "true"}
EDIT = {"action": "edit", "prompt": "Make it blue"}
NEEDS_PUBLIC_URL = "BANANAWEB_PUBLIC_URL"

pytestmark = pytest.mark.usefixtures("clear_tasks")


def picture(name: str = "cat.png", size=(40, 30)) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png_bytes(size), content_type="image/png")


def create(client, data: dict, **kwargs):
    return client.post(reverse("request-create"), data, headers=HTMX, **kwargs)


def html_of(response) -> str:
    return response.content.decode()


def hidden_references(html: str) -> list[str]:
    return re.findall(r'<input type="hidden" name="references" value="([^"]*)">', html)


def completed(user, **kwargs) -> ImageRequest:
    return ImageRequestFactory(user=user, status=Status.COMPLETED, **kwargs)


# --- the picker -------------------------------------------------------------------------


def test_forms_send_multipart_and_offer_the_picker(client_logged_in, settings):
    settings.BANANAWEB_MAX_IMAGE_URLS = 5
    html = html_of(client_logged_in.get(reverse("index")))
    assert html.count('enctype="multipart/form-data"') == 2
    assert html.count('hx-encoding="multipart/form-data"') == 2
    for kind in ("generate", "edit"):
        assert re.search(
            rf'<input type="file" name="uploads" [^>]*multiple[^>]*id="{kind}-uploads"',
            html,
        ) or re.search(rf'id="{kind}-uploads"[^>]*multiple', html)
        assert f'<label for="{kind}-uploads">Pictures</label>' in html
        assert f'id="{kind}-previews"' in html
    assert "takes up to 5 images a request, pictures and image URLs together" in html
    assert NEEDS_PUBLIC_URL not in html


def test_one_uploaded_picture_makes_an_edit(client_logged_in, user):
    response = create(client_logged_in, EDIT | {"uploads": picture("cat.png")})
    assert response.status_code == 200
    image_request = ImageRequest.objects.get()
    upload = Upload.objects.get()
    assert (upload.user, upload.original_name) == (user, "cat.png")
    assert image_request.references.get().upload == upload
    assert f'id="request-{image_request.pk}"' in html_of(response)


def test_several_pictures_at_once_keep_their_order(client_logged_in):
    files = [picture("a.png"), picture("b.png", (10, 10)), picture("c.png")]
    create(
        client_logged_in,
        {"action": "generate", "prompt": "A collage", "uploads": files},
    )
    image_request = ImageRequest.objects.get()
    names = [r.upload.original_name for r in image_request.references.all()]
    assert names == ["a.png", "b.png", "c.png"]


def test_without_js_an_upload_redirects(client_logged_in):
    response = client_logged_in.post(
        reverse("request-create"), EDIT | {"uploads": picture()}
    )
    assert response.status_code == 302
    assert Upload.objects.count() == 1


def test_a_bad_picture_is_refused_by_name_and_nothing_is_saved(client_logged_in):
    notes = SimpleUploadedFile("notes.png", b"not a picture", content_type="image/png")
    response = create(
        client_logged_in,
        EDIT | {"prompt": "My careful prompt", "uploads": [picture(), notes]},
    )
    html = html_of(response)
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#edit-form"
    assert "“notes.png” can&#x27;t be used" in html
    assert 'id="edit-uploads_error"' in html  # beside the picker
    assert "choose them again" in html
    assert "My careful prompt</textarea>" in html
    assert not ImageRequest.objects.exists() and not Upload.objects.exists()


def test_pictures_and_urls_count_together(client_logged_in, settings):
    settings.BANANAWEB_MAX_IMAGE_URLS = 2
    response = create(
        client_logged_in,
        EDIT
        | {"image_urls": "https://a.test/1.png", "uploads": [picture(), picture()]},
    )
    assert response.status_code == 422
    assert "pictures and image URLs together" in html_of(response)
    assert not Upload.objects.exists()


def test_with_the_real_upstream_pictures_need_a_public_url(client_logged_in, settings):
    settings.BANANAWEB_PUBLIC_URL = ""
    settings.MOUNTSEA_SIMULATED = False
    html = html_of(client_logged_in.get(reverse("index")))
    assert NEEDS_PUBLIC_URL in html
    assert re.search(r'<input type="file" name="uploads"[^>]*disabled', html)

    response = create(client_logged_in, EDIT | {"uploads": picture()})
    assert response.status_code == 422
    assert NEEDS_PUBLIC_URL in html_of(response)
    assert 'id="edit-uploads_error"' in html_of(response)
    assert not ImageRequest.objects.exists() and not Upload.objects.exists()

    # Image URLs alone still work.
    create(client_logged_in, EDIT | {"image_urls": "https://a.test/1.png"})
    assert ImageRequest.objects.count() == 1


def test_with_the_simulator_pictures_work_without_a_public_url(
    client_logged_in, settings
):
    settings.BANANAWEB_PUBLIC_URL = ""
    settings.MOUNTSEA_SIMULATED = True
    assert NEEDS_PUBLIC_URL not in html_of(client_logged_in.get(reverse("index")))
    assert create(client_logged_in, EDIT | {"uploads": picture()}).status_code == 200
    assert Upload.objects.count() == 1


# --- our own images as references -------------------------------------------------------


def test_edit_this_image_prefills_our_copy(client_logged_in, user, other_user):
    mine = make_image(completed(user))
    theirs = make_image(completed(other_user))
    response = client_logged_in.get(
        reverse("index"),
        {"action": "edit", "references": [str(mine.pk), str(theirs.pk), "junk"]},
    )
    html = html_of(response)
    assert hidden_references(html) == [str(mine.pk)]
    thumbnail = reverse(
        "image-file", args=[mine.image_request_id, mine.pk, "thumbnail"]
    )
    assert thumbnail in html
    assert (
        reverse("image-file", args=[theirs.image_request_id, theirs.pk, "thumbnail"])
        not in html
    )
    assert '<details class="disclosure" id="edit-section" open>' in html
    assert 'Remove<span class="visually-hidden"> image of request' in html


def test_use_as_reference_prefills_the_generate_form(client_logged_in, user):
    mine = make_image(completed(user))
    html = html_of(
        client_logged_in.get(
            reverse("index"), {"action": "generate", "references": mine.pk}
        )
    )
    generate_form = html[
        html.index('id="generate-form"') : html.index('id="edit-form"')
    ]
    assert hidden_references(generate_form) == [str(mine.pk)]
    assert 'id="generate-references" open' in generate_form


def test_the_historys_filters_alone_fill_no_form(client_logged_in):
    html = html_of(
        client_logged_in.get(
            reverse("index"), {"action": "edit", "model": "nano-banana-2"}
        )
    )
    assert '<details class="disclosure" id="edit-section">' in html
    edit_form = html[html.index('id="edit-form"') :]
    edit_form = edit_form[: edit_form.index("</form>")]
    assert '<option value="nano-banana-2" selected>' not in edit_form


def test_a_posted_reference_is_saved(client_logged_in, user):
    mine = make_image(completed(user))
    response = create(client_logged_in, EDIT | {"references": [mine.pk]})
    assert response.status_code == 200
    child = ImageRequest.objects.exclude(pk=mine.image_request_id).get()
    assert child.references.get().image == mine


def test_a_posted_reference_to_another_users_image_is_a_form_error(
    client_logged_in, user, other_user
):
    mine = make_image(completed(user))
    theirs = make_image(completed(other_user))
    response = create(
        client_logged_in,
        EDIT | {"prompt": "Kept", "references": [mine.pk, theirs.pk]},
    )
    html = html_of(response)
    assert response.status_code == 422
    assert 'id="edit-references_error"' in html
    assert "not one of yours" in html
    assert "Kept</textarea>" in html
    assert hidden_references(html) == [str(mine.pk)]  # what was theirs is not shown
    assert not Reference.objects.exists()
    assert ImageRequest.objects.count() == 2


@pytest.mark.parametrize("junk", ["upload-x", "12abc", "١٢"])
def test_a_malformed_reference_is_a_form_error(client_logged_in, junk):
    response = create(client_logged_in, EDIT | {"references": [junk]})
    assert response.status_code == 422
    assert "not one of yours" in html_of(response)


def test_an_uploaded_picture_can_be_a_reference_again(
    client_logged_in, user, other_user
):
    mine, theirs = make_upload(user), make_upload(other_user)
    response = create(client_logged_in, EDIT | {"references": [f"upload-{mine.pk}"]})
    assert response.status_code == 200
    assert ImageRequest.objects.get().references.get().upload == mine
    response = create(client_logged_in, EDIT | {"references": [f"upload-{theirs.pk}"]})
    assert response.status_code == 422


def test_an_upload_is_shown_to_its_owner_only(client, user, other_user):
    upload = make_upload(user)
    client.force_login(other_user)
    assert client.get(reverse("upload-file", args=[upload.pk])).status_code == 404
    client.force_login(user)
    served = client.get(reverse("upload-file", args=[upload.pk]))
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == png_bytes()


# --- variations and every model -----------------------------------------------------------


def test_how_many_makes_variations_in_one_group(client_logged_in, user, settings):
    settings.BANANAWEB_MAX_VARIATIONS = 4
    response = create(
        client_logged_in, {"action": "generate", "prompt": "Bananas", "count": "3"}
    )
    assert response.status_code == 200
    made = list(ImageRequest.objects.order_by("pk"))
    assert len(made) == 3
    assert len({r.group for r in made}) == 1 and made[0].group is not None
    assert {r.group_kind for r in made} == {ImageRequest.GroupKind.VARIATIONS}
    html = html_of(response)
    assert 'hx-swap-oob="afterbegin:#history-list"' in html
    for image_request in made:  # every one of the group joins the history
        assert f'id="request-{image_request.pk}"' in html


def test_how_many_is_bounded(client_logged_in, settings):
    settings.BANANAWEB_MAX_VARIATIONS = 4
    html = html_of(client_logged_in.get(reverse("index")))
    assert re.search(r'<input type="number" name="count" value="1"[^>]*max="4"', html)
    response = create(
        client_logged_in, {"action": "generate", "prompt": "Bananas", "count": "5"}
    )
    assert response.status_code == 422
    assert 'id="generate-count_error"' in html_of(response)
    assert not ImageRequest.objects.exists()


def test_variations_need_quota_for_all_of_them(client_logged_in, settings):
    settings.BANANAWEB_DEFAULT_DAILY_QUOTA = 2
    response = create(
        client_logged_in, {"action": "generate", "prompt": "Bananas", "count": "3"}
    )
    assert response.status_code == 429
    assert not ImageRequest.objects.exists()


def test_try_on_every_model_sends_one_request_per_model(client_logged_in):
    html = html_of(client_logged_in.get(reverse("index")))
    assert 'name="every_model"' in html and ">Try on every model</button>" in html
    response = create(
        client_logged_in,
        {
            "action": "generate",
            "prompt": "A banana",
            "model": "nano-banana-2",
            "aspect_ratio": "1:8",
            "count": "3",  # ignored: one a model
            "every_model": "1",
        },
    )
    assert response.status_code == 200
    made = list(ImageRequest.objects.order_by("pk"))
    assert sorted(r.model for r in made) == sorted(options.MODELS)
    assert len({r.group for r in made}) == 1
    assert {r.group_kind for r in made} == {ImageRequest.GroupKind.MODELS}
    # 1:8 only where the model offers it.
    assert {r.model: r.aspect_ratio for r in made}["nano-banana-fast"] == ""
    for image_request in made:
        assert f'id="request-{image_request.pk}"' in html_of(response)


def test_every_model_with_a_picture_shares_one_upload(client_logged_in):
    create(
        client_logged_in,
        {"action": "generate", "prompt": "A banana", "every_model": "1"}
        | {"uploads": picture()},
    )
    assert Upload.objects.count() == 1
    assert Reference.objects.count() == len(options.MODELS)


# --- the detail page: run again, use as template, lineage ---------------------------------


def test_run_again_makes_a_new_request_and_goes_to_it(client_logged_in, user):
    parent_image = make_image(completed(user))
    first = services.image_request_create(
        user=user,
        data=EDIT | {"model": "nano-banana-pro", "resolution": "2K"},
        references=[parent_image],
    )
    response = client_logged_in.post(reverse("request-run-again", args=[first.pk]))
    again = ImageRequest.objects.latest("pk")
    assert again.pk != first.pk
    assert response.status_code == 302
    assert response.url == reverse("request-detail", args=[again.pk])
    assert (again.prompt, again.model, again.resolution) == (
        "Make it blue",
        "nano-banana-pro",
        "2K",
    )
    assert again.references.get().image == parent_image


def test_run_again_over_quota_says_so(client_logged_in, user, settings):
    settings.BANANAWEB_DEFAULT_DAILY_QUOTA = 1
    image_request = completed(user)
    response = client_logged_in.post(
        reverse("request-run-again", args=[image_request.pk])
    )
    assert response.status_code == 429
    assert "used all 1 of today&#x27;s requests" in html_of(response)
    assert ImageRequest.objects.count() == 1


def test_run_again_of_another_users_request_is_404(client, user, other_user):
    theirs = completed(other_user)
    client.force_login(user)
    response = client.post(reverse("request-run-again", args=[theirs.pk]))
    assert response.status_code == 404
    assert ImageRequest.objects.count() == 1


def test_run_again_is_a_post(client_logged_in, user):
    image_request = completed(user)
    url = reverse("request-run-again", args=[image_request.pk])
    assert client_logged_in.get(url).status_code == 405


def test_use_as_template_fills_the_form_and_sends_nothing(client_logged_in, user):
    parent_image = make_image(completed(user))
    upload = make_upload(user)
    template = services.image_request_create(
        user=user,
        data=EDIT
        | {
            "prompt": "Bluer, with a hat",
            "model": "nano-banana-2",
            "aspect_ratio": "8:1",
            "image_urls": ["https://a.test/1.png"],
        },
        references=[upload, parent_image],
    )
    detail = html_of(
        client_logged_in.get(reverse("request-detail", args=[template.pk]))
    )
    link = f"{reverse('index')}?template={template.pk}#edit-form"
    assert f'href="{link}"' in detail and ">Use as template</a>" in detail

    before = ImageRequest.objects.count()
    html = html_of(client_logged_in.get(reverse("index"), {"template": template.pk}))
    edit_form = html[html.index('id="edit-form"') :]
    assert "Bluer, with a hat</textarea>" in edit_form
    assert '<option value="nano-banana-2" selected>' in edit_form
    assert '<option value="8:1" selected>' in edit_form
    assert "https://a.test/1.png</textarea>" in edit_form
    assert hidden_references(edit_form) == [f"upload-{upload.pk}", str(parent_image.pk)]
    assert reverse("upload-file", args=[upload.pk]) in edit_form
    assert ImageRequest.objects.count() == before


def test_another_users_template_fills_nothing(client_logged_in, other_user):
    theirs = ImageRequestFactory(user=other_user, prompt="Their secret prompt")
    html = html_of(client_logged_in.get(reverse("index"), {"template": theirs.pk}))
    assert "Their secret prompt" not in html
    for junk in ("abc", "99999999999999999999"):
        assert (
            client_logged_in.get(reverse("index"), {"template": junk}).status_code
            == 200
        )


def test_detail_links_use_our_copy_never_the_upstreams_url(client_logged_in, user):
    image_request = completed(user)
    image = make_image(image_request, source_url="https://cdn.upstream.test/a.png")
    html = html_of(
        client_logged_in.get(reverse("request-detail", args=[image_request.pk]))
    )
    assert f"?action=edit&amp;references={image.pk}#edit-form" in html
    assert f"?action=generate&amp;references={image.pk}#generate-form" in html
    assert "cdn.upstream.test" not in html
    assert ">Run again</button>" in html


def test_lineage_can_be_walked_both_ways(client_logged_in, user):
    upload = make_upload(user, name="holiday.png")
    first = services.image_request_create(user=user, data=EDIT, references=[upload])
    ImageRequest.objects.filter(pk=first.pk).update(status=Status.COMPLETED)
    first_image = make_image(first)
    second = services.image_request_create(
        user=user, data=EDIT | {"prompt": "Now red"}, references=[first_image]
    )

    def detail(image_request):
        url = reverse("request-detail", args=[image_request.pk])
        return html_of(client_logged_in.get(url))

    second_html = detail(second)
    assert "Made from</h3>" in second_html
    assert reverse("request-detail", args=[first.pk]) in second_html
    assert (
        reverse("image-file", args=[first.pk, first_image.pk, "thumbnail"])
        in second_html
    )
    assert "Made from this</h3>" not in second_html

    first_html = detail(first)
    assert "Made from this</h3>" in first_html
    assert reverse("request-detail", args=[second.pk]) in first_html
    assert "An uploaded picture: holiday.png" in first_html
    assert reverse("upload-file", args=[upload.pk]) in first_html


def test_lineage_says_when_the_source_is_gone(client_logged_in, user):
    parent = completed(user)
    image = make_image(parent)
    child = services.image_request_create(user=user, data=EDIT, references=[image])
    services.image_requests_delete(user=user, ids=[parent.pk])
    html = html_of(client_logged_in.get(reverse("request-detail", args=[child.pk])))
    assert "An image since deleted" in html
    assert reverse("request-detail", args=[parent.pk]) not in html


def test_made_from_this_lists_only_the_owners_live_requests(client_logged_in, user):
    parent = completed(user)
    image = make_image(parent)
    child = services.image_request_create(user=user, data=EDIT, references=[image])
    services.image_requests_delete(user=user, ids=[child.pk])  # it's queued: kept
    ImageRequest.objects.filter(pk=child.pk).update(status=Status.FAILED)
    services.image_requests_delete(user=user, ids=[child.pk])
    html = html_of(client_logged_in.get(reverse("request-detail", args=[parent.pk])))
    assert reverse("request-detail", args=[child.pk]) not in html


def test_once_sent_a_reload_does_not_fill_the_form_again(client_logged_in, user):
    # "Edit this image" put the picture in the address; after sending, the
    # address keeps only the history's own filters.
    image = make_image(
        ImageRequestFactory(user=user, status=ImageRequest.Status.COMPLETED)
    )
    current = f"http://testserver/?action=edit&references={image.pk}&q=cat#edit-form"
    response = client_logged_in.post(
        reverse("request-create"),
        {"action": "edit", "prompt": "Blue", "references": [str(image.pk)]},
        headers={"HX-Request": "true", "HX-Current-URL": current},
    )
    assert response.status_code == 200
    assert response["HX-Replace-Url"] == "/?q=cat"
