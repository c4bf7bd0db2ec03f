"""An S3-compatible server for the object store's tests: moto's, in a thread, on loopback.

The cloud's S3 store (cloud.objects.s3) talks to it through boto3 exactly as to any S3 service;
nodes download from its presigned URLs over HTTP. Credentials are set in the environment, as an
operator would (boto3's chain), and taken away afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class S3Server:
    """A running server and the bucket made on it."""

    endpoint: str
    bucket: str

    def client(self) -> Any:
        """A boto3 client of the server (to look behind the cloud's back)."""
        import boto3  # noqa: PLC0415 - the s3 extra

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")


@contextmanager
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """moto's server with one bucket; the AWS_* variables point boto3 at test credentials."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - a test dependency

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "baetyl-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "baetyl-test-secret")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        # moto keeps its buckets per process, not per server: a bucket of this test's own.
        found = S3Server(f"http://{host}:{port}", f"baetyl-{uuid.uuid4().hex[:12]}")
        found.client().create_bucket(Bucket=found.bucket)
        yield found
    finally:
        server.stop()
