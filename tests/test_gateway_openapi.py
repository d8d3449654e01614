"""The OpenAPI document: generated from options.py, matching the upstream contract and the URLs."""

from pathlib import Path

import pytest
import yaml
from django.urls import resolve

from bananaweb import options
from bananaweb.gateway import openapi

# The shared contract sits beside the repository (CI copies shared/ there too): a
# missing file fails the test rather than skipping it.
REPOSITORY = Path(__file__).resolve().parents[1]
CONTRACT = REPOSITORY.parent / "shared" / "contracts" / "mountsea-openapi.yaml"


@pytest.fixture
def document(client, db):
    return client.get("/api/openapi.json").json()


def request_properties(document: dict) -> dict:
    return document["components"]["schemas"]["ImageGenerateRequest"]["properties"]


def test_the_enums_are_the_contracts_values(document):
    properties = request_properties(document)
    assert properties["action"]["enum"] == ["generate", "edit"]
    assert properties["model"]["enum"] == [
        "nano-banana-fast",
        "nano-banana-pro",
        "nano-banana-2",
    ]
    assert properties["resolution"]["enum"] == ["1K", "2K", "4K"]
    assert properties["aspect_ratio"]["enum"] == [
        "21:9",
        "1:1",
        "4:3",
        "3:2",
        "2:3",
        "5:4",
        "4:5",
        "3:4",
        "16:9",
        "9:16",
        "1:4",
        "4:1",
        "1:8",
        "8:1",
    ]
    assert document["components"]["schemas"]["TaskResult"]["properties"]["status"][
        "enum"
    ] == [
        "pending",
        "ready",
        "assigned",
        "processing",
        "completed",
        "failed",
        "cancelled",
        "timeout",
    ]


def test_the_enums_come_from_options(document):
    properties = request_properties(document)
    assert properties["aspect_ratio"]["enum"] == options.AspectRatio.values
    assert properties["model"]["default"] == options.DEFAULT_MODEL
    assert properties["prompt"]["maxLength"] == options.PROMPT_MAX_LENGTH


def test_the_request_body_keeps_the_upstreams_fields_and_enums(document):
    contract = yaml.safe_load(CONTRACT.read_text())["components"]["schemas"][
        "ImageGenerateRequest"
    ]
    ours = document["components"]["schemas"]["ImageGenerateRequest"]
    assert ours["required"] == contract["required"]
    assert set(request_properties(document)) == set(contract["properties"])
    for name, schema in contract["properties"].items():
        assert request_properties(document)[name]["type"] == schema["type"]
        if "enum" in schema:
            assert sorted(
                map(str, request_properties(document)[name]["enum"])
            ) == sorted(map(str, schema["enum"]))


def test_every_path_is_served_by_the_gateway(document):
    base = "/api"
    for path in document["paths"]:
        match = resolve(base + path.replace("{imageId}", "1"))
        assert match.url_name.startswith("gateway-")
    assert set(document["paths"]) == {
        openapi.GENERATE_PATH,
        openapi.RESULT_PATH,
        openapi.IMAGE_PATH,
        openapi.OPENAPI_PATH,
    }


def test_operations_need_a_bearer_token_except_the_document(document):
    assert document["security"] == [{"bearerAuth": []}]
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert document["paths"][openapi.OPENAPI_PATH]["get"]["security"] == []


def test_every_error_answer_is_documented(document):
    generate = document["paths"][openapi.GENERATE_PATH]["post"]["responses"]
    result = document["paths"][openapi.RESULT_PATH]["get"]["responses"]
    image = document["paths"][openapi.IMAGE_PATH]["get"]["responses"]
    assert set(generate) == {"201", "400", "401", "413", "422", "429"}
    assert set(result) == {"200", "400", "401", "404", "413", "429"}
    assert set(image) == {"200", "401", "404", "413", "429"}
    responses = document["components"]["responses"]
    assert responses["TooManyRequests"]["headers"]["Retry-After"]["required"] is True
    assert responses["Unauthorized"]["headers"]["WWW-Authenticate"]["required"] is True
