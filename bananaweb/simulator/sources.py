"""Downloading an edit's `image_urls`, with the limits the contract states."""

import requests

from bananaweb import options

TIMEOUT_SECONDS = 10
CHUNK_BYTES = 64 * 1024


class SourceError(Exception):
    """Why an image URL could not be used, in words for `errorMessage`."""


def download(url: str) -> bytes:
    """The bytes at `url`, at most `options.MAX_IMAGE_BYTES` of them."""
    too_large = f"larger than {options.MAX_IMAGE_BYTES // (1024 * 1024)} MB"
    try:
        with requests.get(url, timeout=TIMEOUT_SECONDS, stream=True) as response:
            if response.status_code != 200:
                raise SourceError(f"the server answered {response.status_code}")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > options.MAX_IMAGE_BYTES:
                raise SourceError(too_large)
            data = bytearray()
            for chunk in response.iter_content(CHUNK_BYTES):
                data += chunk
                if len(data) > options.MAX_IMAGE_BYTES:
                    raise SourceError(too_large)
    except requests.Timeout as exc:
        raise SourceError(f"no answer within {TIMEOUT_SECONDS} seconds") from exc
    except requests.ConnectionError as exc:
        raise SourceError("could not connect to the server") from exc
    except requests.RequestException as exc:
        raise SourceError(f"the request failed ({type(exc).__name__})") from exc
    return bytes(data)
