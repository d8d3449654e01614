"""moto's S3 server, a real process on loopback, for the tests that keep media in a
bucket (test_s3_storage.py, the scale-out test).

`start_moto_server()` starts one and returns its endpoint and a stop;
`create_bucket()` makes a fresh bucket on it; `storage_settings()` is the
STORAGES["default"] entry for the tests' own process (override_settings) and
`s3_env()` the environment that selects the same bucket in a process started
with bananaweb's settings (the README's variables). The `moto_s3` fixture, one
server per test session, is for test modules to import.
"""

import socket
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from tests.stack_helpers import Process, clean_environ, free_port, wait_until

# moto accepts any keys; these only have to be the same on both sides.
ACCESS_KEY_ID = "moto-test-key"
SECRET_ACCESS_KEY = "moto-test-secret"
REGION = "us-east-1"


@dataclass
class MotoServer:
    endpoint_url: str
    process: Process

    def stop(self) -> None:
        self.process.stop()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_moto_server(log_dir: Path) -> MotoServer:
    """moto_server on a free loopback port, once it answers; its log in log_dir."""
    port = free_port()
    # Nothing of this machine's AWS set-up reaches it.
    env = {k: v for k, v in clean_environ().items() if not k.startswith("AWS_")}
    process = Process(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env,
        log_dir,
    )
    try:
        wait_until(lambda: _listening(port) or not process.alive(), 30, "moto_server")
        if not process.alive():
            pytest.fail(f"moto_server did not start:\n{process.output()}")
    except BaseException:
        process.stop()
        raise
    return MotoServer(endpoint_url=f"http://127.0.0.1:{port}", process=process)


def s3_client(endpoint_url: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )


def create_bucket(endpoint_url: str, name: str = "") -> str:
    """A new, empty bucket (a unique name unless given); its name."""
    name = name or f"bananaweb-test-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint_url).create_bucket(Bucket=name)
    return name


def bucket_keys(endpoint_url: str, bucket: str) -> list[str]:
    """Every key in the bucket, sorted (past 1,000: the scale-out test's thousands)."""
    pages = (
        s3_client(endpoint_url).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    )
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@dataclass
class Bucket:
    """A bucket on a moto server, looked at from outside bananaweb."""

    endpoint_url: str
    name: str

    @property
    def client(self):
        return s3_client(self.endpoint_url)

    def listing(self) -> list[str]:
        """Its keys, sorted."""
        return bucket_keys(self.endpoint_url, self.name)

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


def storage_settings(endpoint_url: str, bucket: str, location: str = "") -> dict:
    """STORAGES["default"] as bananaweb.settings builds it from the environment, with
    moto's keys given directly (this process's environment is left alone)."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url,
            "region_name": REGION,
            "location": location,
            "access_key": ACCESS_KEY_ID,
            "secret_key": SECRET_ACCESS_KEY,
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": 300,
            "file_overwrite": False,
        },
    }


def s3_env(endpoint_url: str, bucket: str, location: str = "") -> dict[str, str]:
    """The environment that puts a bananaweb process's media in this bucket."""
    return {
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": endpoint_url,
        "AWS_S3_REGION_NAME": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_LOCATION": location,
    }


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory) -> Iterator[MotoServer]:
    """One moto_server for the whole session."""
    server = start_moto_server(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()
