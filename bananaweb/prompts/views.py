"""The prompt templates' pages: the list, the form, and using a template in the
Generate and Edit forms (htmx fills them; without JS, a link opens them filled)."""

from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import Truncator
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from bananaweb import options
from bananaweb.forms import ImageRequestForm
from bananaweb.models import ImageRequest
from bananaweb.prompts import placeholders, services
from bananaweb.prompts.forms import PromptTemplateForm
from bananaweb.prompts.models import OPTION_FIELDS, PromptTemplate


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


# A placeholder's value travels as fill-<its name>: ?fill-animal=cat&fill-place=mat.
FILL_PREFIX = "fill-"
# The composer's values, kept while its "Save as template" opens the form.
DRAFT_KEY = "prompt_template_draft"
DRAFT_FIELDS = ("prompt", *OPTION_FIELDS)


def _own(request: HtmxHttpRequest, pk: int) -> PromptTemplate:
    """One of the user's own templates: anyone else's is a 404, shared or not."""
    return get_object_or_404(PromptTemplate.objects.for_user(request.user), pk=pk)


def _usable(request: HtmxHttpRequest, pk: int) -> PromptTemplate:
    """One of the user's own, or one shared with the team."""
    return get_object_or_404(
        PromptTemplate.objects.visible_to(request.user).select_related("user"), pk=pk
    )


def _kind(request: HtmxHttpRequest) -> str:
    action = request.GET.get("action")
    return action if action in options.Action.values else options.Action.GENERATE


def _values(request: HtmxHttpRequest) -> dict[str, str]:
    return {
        placeholders.key_of(name.removeprefix(FILL_PREFIX)): value
        for name, value in request.GET.items()
        if name.startswith(FILL_PREFIX)
    }


# --- The list ---------------------------------------------------------------------------


@require_GET
def prompt_templates(request: HtmxHttpRequest) -> HttpResponse:
    """The user's templates, to change, and the team's shared ones, to use."""
    return render(
        request,
        "prompts/list.html",
        {
            "own_templates": PromptTemplate.objects.for_user(request.user).by_name(),
            "team_templates": PromptTemplate.objects.shared_by_others(request.user)
            .select_related("user")
            .by_name(),
        },
    )


@require_POST
def prompt_template_share(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    prompt_template = _own(request, pk)
    shared = request.POST.get("shared", "")
    if shared not in ("0", "1"):
        return HttpResponseBadRequest("shared is 1 (share it) or 0 (stop sharing).")
    services.prompt_template_set_shared(
        prompt_template=prompt_template, shared=shared == "1"
    )
    if request.htmx:
        return render(
            request,
            "prompts/list.html#template-row",
            {"prompt_template": prompt_template},
        )
    return redirect(f"{reverse('prompt-templates')}#template-{pk}")


@require_http_methods(["GET", "POST"])
def prompt_template_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    prompt_template = _own(request, pk)
    if request.method != "POST":
        return render(
            request, "prompts/delete.html", {"prompt_template": prompt_template}
        )
    services.prompt_template_delete(prompt_template=prompt_template)
    messages.success(request, f"The template “{prompt_template.name}” was deleted.")
    return redirect("prompt-templates")


# --- The form ---------------------------------------------------------------------------


def _form_page(
    request: HtmxHttpRequest,
    form: PromptTemplateForm,
    prompt_template: PromptTemplate | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {"form": form, "prompt_template": prompt_template}
    return render(request, "prompts/form.html", context, status=status)


def _save(
    request: HtmxHttpRequest,
    form: PromptTemplateForm,
    prompt_template: PromptTemplate | None = None,
) -> HttpResponse:
    """Create or change the template from the posted form, or show what is wrong."""
    if form.is_valid():
        data = {name: form.cleaned_data[name] for name in services.EDITABLE}
        try:
            if prompt_template is None:
                saved = services.prompt_template_create(user=request.user, **data)
            else:
                saved = services.prompt_template_update(
                    prompt_template=prompt_template, **data
                )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            request.session.pop(DRAFT_KEY, None)
            messages.success(request, f"The template “{saved.name}” was saved.")
            return redirect(f"{reverse('prompt-templates')}#template-{saved.pk}")
    return _form_page(request, form, prompt_template, status=422)


def _suggested_name(prompt: str) -> str:
    return Truncator(" ".join(prompt.split())).chars(60)


def _initial(request: HtmxHttpRequest) -> dict:
    """A new template's values: from a request (?request=<id>), from the composer's
    values ("Save as template" there: kept in the session, ?draft), or from the
    query string (?prompt=&model=&aspect_ratio=&resolution=)."""
    if "request" in request.GET:
        pk = request.GET["request"]
        if not (pk.isascii() and pk.isdigit() and len(pk) <= 12):
            raise Http404("No such request.")
        # Any request the user may see: a teammate's too, as a start of their own.
        image_request = get_object_or_404(
            ImageRequest.objects.visible_to(request.user), pk=pk
        )
        values = {name: getattr(image_request, name) for name in DRAFT_FIELDS}
    elif "draft" in request.GET:
        values = request.session.get(DRAFT_KEY) or {}
    else:
        values = {
            name: request.GET[name] for name in DRAFT_FIELDS if name in request.GET
        }
    if values.get("prompt"):
        values["name"] = _suggested_name(values["prompt"])
    return values


@require_http_methods(["GET", "POST"])
def prompt_template_create(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = PromptTemplateForm(
            request.POST, instance=PromptTemplate(user=request.user)
        )
        return _save(request, form)
    return _form_page(request, PromptTemplateForm(initial=_initial(request)))


@require_POST
def prompt_template_draft(request: HtmxHttpRequest) -> HttpResponse:
    """The composer's "Save as template": its current values open the template form.

    They are kept in the session, not the address (a long prompt would make a URL
    too long for the server), and nothing is saved until that form is sent.
    """
    request.session[DRAFT_KEY] = {
        name: request.POST.get(name, "")[: options.PROMPT_MAX_LENGTH]
        for name in DRAFT_FIELDS
    }
    url = reverse("prompt-template-create") + "?draft"
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_http_methods(["GET", "POST"])
def prompt_template_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Rename, rewrite, share or unshare one of the user's templates."""
    prompt_template = _own(request, pk)
    if request.method == "POST":
        # A copy for the form: the page keeps the saved name while errors show.
        form = PromptTemplateForm(request.POST, instance=_own(request, pk))
        return _save(request, form, prompt_template)
    form = PromptTemplateForm(instance=prompt_template)
    return _form_page(request, form, prompt_template)


@require_GET
def prompt_template_options(request: HtmxHttpRequest) -> HttpResponse:
    """The aspect-ratio and resolution fields for the chosen model."""
    form = PromptTemplateForm(
        initial={name: request.GET.get(name, "") for name in OPTION_FIELDS}
    )
    return render(request, "prompts/form.html#option-fields", {"form": form})


# --- Using one ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaceholderField:
    """A placeholder's text field; its error only once the user asked to fill."""

    placeholder: placeholders.Placeholder
    id: str
    name: str
    value: str
    error: str = ""


def _fields(
    prompt_template: PromptTemplate,
    values: dict[str, str],
    *,
    id_prefix: str,
    required: bool,
) -> list[PlaceholderField]:
    return [
        PlaceholderField(
            placeholder=placeholder,
            id=f"{id_prefix}-placeholder-{number}",
            name=FILL_PREFIX + placeholder.key,
            value=values.get(placeholder.key, ""),
            error=f"Fill in “{placeholder.label}”: the template needs a value for each "
            "placeholder."
            if required and not values.get(placeholder.key, "").strip()
            else "",
        )
        for number, placeholder in enumerate(prompt_template.placeholders, start=1)
    ]


def _too_long(filled: placeholders.Filled) -> str:
    """Why the filled prompt can't be sent (too long), or ""."""
    errors = options.option_errors(prompt=filled.prompt, action=options.Action.GENERATE)
    return errors.get("prompt", "")


def _status(filled: placeholders.Filled) -> list[str]:
    """What a person filling the template should know: what is left to fill, what
    was left out, and whether the prompt is too long."""
    lines = []
    if filled.missing:
        names = ", ".join(f"“{p.label}”" for p in filled.missing)
        lines.append(f"Still to fill in: {names}.")
    lines += filled.notes
    if too_long := _too_long(filled):
        lines.append(too_long)
    return lines


def _filled_form(
    kind: str, prompt_template: PromptTemplate, prompt: str
) -> ImageRequestForm:
    """The request form's fields with the template's values, each marked to
    replace its twin on the page (out of band), so nothing else in the form
    (pictures chosen, URLs typed) is lost."""
    form = ImageRequestForm(
        action=kind, initial={"prompt": prompt, **prompt_template.option_values()}
    )
    for name in ("prompt", "model"):
        form.fields[name].widget.attrs["hx-swap-oob"] = "true"
    return form


def _index_url(kind: str, prompt_template: PromptTemplate, prompt: str) -> str:
    """The main page with the form filled (its ?prompt=&model=... prefill)."""
    query = {"action": kind, "prompt": prompt, **prompt_template.option_values()}
    return f"{reverse('index')}?{urlencode(query)}#{kind}-form"


@require_GET
@vary_on_headers("HX-Request")
def prompt_template_use(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Fill the Generate or Edit form (?action=) from a template.

    With htmx: the form's prompt, model and option fields, and the template's
    placeholders as fields. Without: the main page with the form filled, once
    every placeholder has a value (a page asks for them first).
    """
    prompt_template = _usable(request, pk)
    kind = _kind(request)
    values = _values(request)
    filled = prompt_template.fill(values)
    if request.htmx:
        context = {
            "form": _filled_form(kind, prompt_template, filled.prompt),
            "picked": prompt_template,
            "fields": _fields(prompt_template, values, id_prefix=kind, required=False),
            "status": _status(filled),
        }
        return render(request, "prompts/fragments.html#picked", context)
    # Without JS: ?go is the page's button, asking to fill the form.
    asked = "go" in request.GET
    too_long = _too_long(filled)
    if not prompt_template.placeholders or (
        asked and not filled.missing and not too_long
    ):
        return redirect(_index_url(kind, prompt_template, filled.prompt))
    context = {
        "prompt_template": prompt_template,
        "kind": kind,
        "kind_label": options.Action(kind).label,
        "fields": _fields(prompt_template, values, id_prefix="use", required=asked),
        "notes": filled.notes if asked else [],
        "prompt_error": too_long if asked else "",
    }
    return render(request, "prompts/use.html", context, status=422 if asked else 200)


@require_GET
def prompt_template_fill(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """As the placeholders are typed: the form's prompt, rebuilt, and what is left."""
    prompt_template = _usable(request, pk)
    kind = _kind(request)
    filled = prompt_template.fill(_values(request))
    context = {
        "form": _filled_form(kind, prompt_template, filled.prompt),
        "status": _status(filled),
    }
    return render(request, "prompts/fragments.html#filled", context)
