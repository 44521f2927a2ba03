"""The approval service's own settings (AVATAR_LOOP_TEST_*), beside the kit's."""
from __future__ import annotations

from pydantic import Field

from services.kit.settings import Settings


class ApprovalSettings(Settings):
    loop_test_rl_episodes: int = Field(default=10, ge=3, le=1000, description="episodes of an RL loop test")
    loop_test_general_runs: int = Field(default=5, ge=1, le=1000, description="repeated runs of a general loop test")
    loop_test_timeout_seconds: int = Field(default=3600, ge=1, description="a running test without a result fails after this")
    loop_test_sweep_seconds: float = Field(default=30.0, gt=0, description="how often overdue tests are looked for")
