from typing import Annotated

import httpx
from fastapi import FastAPI, Query

from services.kit import errors
from services.kit.paging import Page, Paging


def app_raising(error: Exception) -> FastAPI:
    app = errors.install(FastAPI())

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return app


async def answer(app: FastAPI, url: str = "/boom") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get(url)


async def test_not_found_is_a_404_with_a_plain_message():
    response = await answer(app_raising(errors.NotFound("app APP-1 not found")))
    assert (response.status_code, response.json()) == (404, {"detail": "app APP-1 not found"})


async def test_refusals_carry_their_code_message_and_extras():
    response = await answer(app_raising(errors.Invalid("no", code="cycle", edge={"from": "a", "to": "b"})))
    assert response.status_code == 422
    assert response.json() == {"detail": {"code": "cycle", "message": "no", "edge": {"from": "a", "to": "b"}}}
    assert (await answer(app_raising(errors.Conflict("taken")))).json()["detail"]["code"] == "conflict"
    assert (await answer(app_raising(errors.Unavailable("down")))).status_code == 503


async def test_pages_answer_with_their_position():
    app = FastAPI()

    @app.get("/items")
    async def items(paging: Paging, size: Annotated[int, Query()] = 45) -> Page[int]:
        everything = list(range(size))
        return Page.of(everything[paging.offset:paging.offset + paging.page_size], size, paging)

    body = (await answer(app, "/items?page=3&page_size=20")).json()
    assert body == {"items": list(range(40, 45)), "total": 45, "page": 3, "page_size": 20}
    assert (await answer(app, "/items")).json()["page_size"] == 20
    assert (await answer(app, "/items?page_size=101")).status_code == 422
    assert (await answer(app, "/items?page=0")).status_code == 422
