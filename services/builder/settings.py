"""Builder settings: the shared ones plus the approval threshold it displays (AVATAR_THRESHOLD_*)."""
from __future__ import annotations

from pydantic import Field

from contracts.resources import Memory
from services.builder.domain import Threshold
from services.kit.settings import Settings


class BuilderSettings(Settings):
    # Must match the approval service's threshold: the builder only shows it (BL-06), approval decides.
    threshold_gpu_count: int = Field(default=4, ge=1, le=1024)
    threshold_memory: Memory = "128GB"
    library_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @property
    def threshold(self) -> Threshold:
        return Threshold(gpu_count=self.threshold_gpu_count, memory=self.threshold_memory)
