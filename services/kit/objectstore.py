"""The S3 object store (MinIO in production, any S3 API here), always through the minio SDK."""
from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import urllib3
from minio import Minio

from services.kit.instrument import minio_class
from services.kit.settings import Settings


def make_client(settings: Settings, *, http_client: urllib3.PoolManager | None = None) -> Minio:
    """`http_client` lets a service choose its own timeouts, retries and pool size (minio's default
    waits up to 5 minutes on a dead endpoint). Requests made inside a trace are client spans."""
    endpoint = urlsplit(settings.s3_endpoint)
    return minio_class()(endpoint.netloc, access_key=settings.s3_access_key, secret_key=settings.s3_secret_key,
                         secure=endpoint.scheme == "https", region=settings.s3_region, http_client=http_client)


def ensure_buckets(client: Minio, *buckets: str) -> None:
    for bucket in buckets:
        if not client.bucket_exists(bucket):
            try:
                client.make_bucket(bucket)
            except Exception as exc:  # another service created it meanwhile
                if "BucketAlreadyOwnedByYou" not in str(exc) and "BucketAlreadyExists" not in str(exc):
                    raise


async def check_bucket(client: Minio, bucket: str) -> None:
    if not await asyncio.to_thread(client.bucket_exists, bucket):
        raise RuntimeError(f"bucket {bucket} does not exist")


def split_s3_url(url: str) -> tuple[str, str]:
    """s3://bucket/prefix/ -> (bucket, prefix/)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an s3:// URL: {url!r}")
    return parts.netloc, parts.path.lstrip("/")
