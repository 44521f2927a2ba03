"""What the Builder's routes are handed besides the kit's Platform and message bus."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.builder.domain import Threshold


async def _threshold(request: Request) -> Threshold:
    return request.app.state.settings.threshold


ThresholdDep = Annotated[Threshold, Depends(_threshold)]
