"""Settings of the models service (env AVATAR_MODELS_*), on top of the platform's."""
from __future__ import annotations

from pydantic import Field

from services.kit.settings import Settings

MIB = 1024 * 1024


class ModelsSettings(Settings):
    # how many models are copied at once, and how each file is uploaded (memory ≈ parts in flight × part size)
    models_store_concurrency: int = Field(default=2, ge=1, le=32)
    models_part_size: int = Field(default=8 * MIB, ge=5 * MIB, le=512 * MIB)
    models_parallel_parts: int = Field(default=3, ge=1, le=16)
    # downloads: bytes read from the store per step, and threads doing those reads for all downloads
    models_download_chunk: int = Field(default=1 * MIB, ge=64 * 1024, le=64 * MIB)
    models_download_threads: int = Field(default=8, ge=1, le=256)
    # an object store outage: exponential backoff between attempts, capped
    models_retry_base_seconds: float = Field(default=1.0, gt=0)
    models_retry_cap_seconds: float = Field(default=300.0, gt=0)
    # a replica owns a pending model for this long and renews it while copying; a crashed one's lease expires
    models_lease_seconds: float = Field(default=60.0, ge=1)
    models_poll_seconds: float = Field(default=5.0, gt=0)
    # the staged copy is removed only after the stored copy is verified and recorded
    models_delete_staged: bool = True
    models_s3_connect_timeout: float = Field(default=5.0, gt=0)
    models_s3_read_timeout: float = Field(default=120.0, gt=0)

