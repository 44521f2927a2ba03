"""What the Builder's routes are handed besides the kit's Platform: the threshold and the component catalog."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.builder.domain import Threshold
from services.builder.library import ComponentCatalog


def _threshold(request: Request) -> Threshold:
    return request.app.state.settings.threshold


def _catalog(request: Request) -> ComponentCatalog:
    return request.app.state.catalog


ThresholdDep = Annotated[Threshold, Depends(_threshold)]
CatalogDep = Annotated[ComponentCatalog, Depends(_catalog)]
