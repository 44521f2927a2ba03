"""The approval threshold (docs/spec.md §5.1): ANY single component with GPU >= 4 or memory >= 128GB needs an admin.

One definition, used by the builder (BL-06: show `exceeds_threshold` per component) and by the
approval service (AP-05: decide). Admins can move the values; these are the defaults.
"""
from __future__ import annotations

from dataclasses import dataclass

from contracts.resources import Resources, parse_memory


@dataclass(frozen=True)
class Thresholds:
    gpu_count: int = 4
    memory: str = "128GB"

    @property
    def memory_bytes(self) -> int:
        return parse_memory(self.memory)

    def reasons(self, gpu_count: int, memory: str) -> list[str]:
        """What about these resources reaches the threshold; empty when nothing does."""
        over = []
        if gpu_count >= self.gpu_count:
            over.append(f"{gpu_count} GPU{'' if gpu_count == 1 else 's'} >= {self.gpu_count}")
        if parse_memory(memory) >= self.memory_bytes:
            over.append(f"memory {memory} >= {self.memory}")
        return over

    def exceeded_by(self, resources: Resources) -> bool:
        return bool(self.reasons(resources.gpu_count, resources.memory))
