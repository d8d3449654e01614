"""The gateway's OpenAPI document, built from options.py so it can't drift from the rules."""

import mimetypes

from django.conf import settings

from bananaweb import images, options
from bananaweb.gateway.auth import MAX_BODY_BYTES
from bananaweb.gateway.results import ERROR_CODES
from bananaweb.models import ErrorCode

# Paths relative to the base URL, as in the upstream contract: a script swaps
# https://api.mountsea.ai for <bananaweb>/api and keeps its paths.
GENERATE_PATH = "/gemini/image/generate"
RESULT_PATH = "/gemini/task/result"
IMAGE_PATH = "/images/{imageId}/"
OPENAPI_PATH = "/openapi.json"

IMAGE_CONTENT_TYPES = sorted(
    {mimetypes.types_map[ext] for ext in images.FORMATS.values()}
)


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _response(name: str) -> dict:
    return {"$ref": f"#/components/responses/{name}"}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _model_rules() -> str:
    return "; ".join(
        f"{model}: aspect ratios {', '.join(spec.aspect_ratios)}; "
        + (
            f"resolutions {', '.join(spec.resolutions)}"
            if spec.resolutions
            else "no resolution (fixed)"
        )
        for model, spec in options.MODELS.items()
    )


def request_schema() -> dict:
    return {
        "type": "object",
        "required": ["prompt", "action"],
        "description": "The upstream's own body. Unknown fields are ignored. Per model: "
        + _model_rules()
        + ".",
        "properties": {
            "prompt": {
                "type": "string",
                "minLength": 1,
                "maxLength": options.PROMPT_MAX_LENGTH,
                "description": "The prompt used to generate the images; not only whitespace.",
            },
            "action": {
                "type": "string",
                "enum": options.Action.values,
                "description": "edit (modify existing images) or generate (create new images)",
            },
            "num_images": {
                "type": "number",
                "enum": list(options.NUM_IMAGES),
                "default": 1,
                "description": "Only 1 image is supported.",
            },
            "image_urls": {
                "type": "array",
                "maxItems": settings.BANANAWEB_MAX_IMAGE_URLS,
                "items": {"type": "string", "format": "uri", "pattern": "^https?://"},
                "description": "http or https URLs of images of at most "
                f"{options.MAX_IMAGE_BYTES // (1024 * 1024)} MB each. Required when action is edit.",
            },
            "aspect_ratio": {
                "type": "string",
                "enum": options.AspectRatio.values,
                "description": "Which ratios a model supports: see the request body's description.",
            },
            "model": {
                "type": "string",
                "enum": options.Model.values,
                "default": str(options.DEFAULT_MODEL),
            },
            "resolution": {
                "type": "string",
                "enum": options.Resolution.values,
                "description": "Only for the models that offer a resolution: "
                + ", ".join(m for m, spec in options.MODELS.items() if spec.resolutions)
                + ".",
            },
        },
    }


def _schemas() -> dict:
    error_codes = "; ".join(f"{number} {code}" for code, number in ERROR_CODES.items())
    return {
        "ImageGenerateRequest": request_schema(),
        "TaskCreated": {
            "type": "object",
            "required": ["taskId"],
            "additionalProperties": False,
            "properties": {
                "taskId": {
                    "type": "string",
                    "format": "uuid",
                    "description": "Poll /gemini/task/result with it.",
                }
            },
        },
        "TaskResult": {
            "type": "object",
            "required": ["taskId", "status", "result", "createdAt"],
            "additionalProperties": False,
            "properties": {
                "taskId": {"type": "string", "format": "uuid"},
                "status": {
                    "type": "string",
                    "enum": options.UpstreamStatus.values,
                    "description": "Terminal: "
                    + ", ".join(sorted(options.TERMINAL_STATUSES))
                    + ". The others mean the task is still in flight.",
                },
                "result": {**_ref("TaskImages"), "nullable": True},
                "errorMessage": {
                    "type": "string",
                    "description": "Why it failed, in plain words. A request whose outcome is unknown "
                    "(sent, no usable answer) reports failed with errorCode "
                    f"{ERROR_CODES[ErrorCode.UNKNOWN_OUTCOME]}; it is never resent, so it is never charged twice.",
                },
                "errorCode": {
                    "type": "integer",
                    "description": f"HTTP-like: 4xx your request, 5xx the service ({error_codes}).",
                },
                "finishedAt": {"type": "string", "format": "date-time"},
                "createdAt": {"type": "string", "format": "date-time"},
            },
        },
        "TaskImages": {
            "type": "object",
            "required": ["images"],
            "additionalProperties": False,
            "description": "Set once the task completed.",
            "properties": {"images": {"type": "array", "items": _ref("TaskImage")}},
        },
        "TaskImage": {
            "type": "object",
            "required": ["url", "upstream_url", "width", "height", "content_type"],
            "additionalProperties": False,
            "properties": {
                "url": {
                    "type": "string",
                    "format": "uri",
                    "description": "The stored image on bananaweb; send the same bearer token to download it.",
                },
                "upstream_url": {
                    "type": "string",
                    "nullable": True,
                    "description": "Where the image service put it, which may expire.",
                },
                "width": {"type": "integer"},
                "height": {"type": "integer"},
                "content_type": {"type": "string", "enum": IMAGE_CONTENT_TYPES},
            },
        },
        "Error": {
            "type": "object",
            "required": ["message", "errors"],
            "additionalProperties": False,
            "properties": {
                "message": {"type": "string"},
                "errors": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "Per request field, what is wrong with it.",
                },
            },
        },
    }


def _responses() -> dict:
    retry_after = {
        "Retry-After": {
            "required": True,
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
    return {
        "BadRequest": {
            "description": "Invalid request",
            "content": _json(_ref("Error")),
        },
        "Unauthorized": {
            "description": "Missing, invalid or revoked token",
            "headers": {
                "WWW-Authenticate": {"required": True, "schema": {"type": "string"}}
            },
            "content": _json(_ref("Error")),
        },
        "NotFound": {
            "description": "No such task or image, or it belongs to someone else",
            "content": _json(_ref("Error")),
        },
        "IdempotencyConflict": {
            "description": "This Idempotency-Key was already used with another body; "
            "nothing new was sent",
            "content": _json(_ref("Error")),
        },
        "PayloadTooLarge": {
            "description": f"The body is over {MAX_BODY_BYTES // 1024} KB",
            "content": _json(_ref("Error")),
        },
        "TooManyRequests": {
            "description": "Over the daily quota (shared with the web UI) or the per-token rate limit "
            f"({settings.BANANAWEB_API_RATE_LIMIT} requests a minute)",
            "headers": retry_after,
            "content": _json(_ref("Error")),
        },
    }


def document(*, server_url: str) -> dict:
    """The OpenAPI 3.0 document, with server_url (bananaweb's …/api) as its only server."""
    token_errors = {
        "401": _response("Unauthorized"),
        "413": _response("PayloadTooLarge"),
        "429": _response("TooManyRequests"),
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "bananaweb gateway: the Mountsea Nano Banana API",
            "version": "1.0.0",
            "description": "The Mountsea API's own contract, behind personal bananaweb tokens: point a "
            "Mountsea script at this server and a bananaweb token. Requests land in your history "
            "and count against your daily quota. Errors are JSON "
            '{"message": ..., "errors": {field: message}}; a wrong method is a 405.',
        },
        "servers": [{"url": server_url}],
        "security": [{"bearerAuth": []}],
        "paths": {
            GENERATE_PATH: {
                "post": {
                    "operationId": "generateImage",
                    "summary": "Nano Banana image generation (generate or edit)",
                    "description": "Send an Idempotency-Key header (any unique string, "
                    "such as a UUID) to retry safely: the same key and body give the "
                    "first taskId again, and nothing is sent or charged twice.",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "maxLength": 100},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": _json(_ref("ImageGenerateRequest")),
                    },
                    "responses": {
                        "201": {
                            "description": "Task accepted",
                            "content": _json(_ref("TaskCreated")),
                        },
                        "400": _response("BadRequest"),
                        "422": _response("IdempotencyConflict"),
                        **token_errors,
                    },
                }
            },
            RESULT_PATH: {
                "get": {
                    "operationId": "getTaskResult",
                    "summary": "Get task result by taskId",
                    "parameters": [
                        {
                            "name": "taskId",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "Task state",
                            "content": _json(_ref("TaskResult")),
                        },
                        "400": _response("BadRequest"),
                        "404": _response("NotFound"),
                        **token_errors,
                    },
                }
            },
            IMAGE_PATH: {
                "get": {
                    "operationId": "getImage",
                    "summary": "One of your stored images",
                    "description": "Also opens in a browser signed in to bananaweb.",
                    "security": [{"bearerAuth": []}, {"sessionCookie": []}],
                    "parameters": [
                        {
                            "name": "imageId",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The image",
                            "content": {
                                t: {"schema": {"type": "string", "format": "binary"}}
                                for t in IMAGE_CONTENT_TYPES
                            },
                        },
                        "404": _response("NotFound"),
                        **token_errors,
                    },
                }
            },
            OPENAPI_PATH: {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "OpenAPI document",
                            "content": _json({"type": "object"}),
                        }
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal token from bananaweb's API tokens page.",
                },
                "sessionCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": settings.SESSION_COOKIE_NAME,
                },
            },
            "schemas": _schemas(),
            "responses": _responses(),
        },
    }
