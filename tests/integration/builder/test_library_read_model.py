import httpx

from services.builder.main import create_app as create_builder
from services.library.main import create_app as create_library
from tests.integration.builder.support import call, new_app, new_task, place
from tests.integration.library.support import register, unseeded
from tests.support.infra import wait_until
from tests.support.services import running_service

# No module-wide `stack` here: a second builder on the same broker would compete for builder.events.


class Unreachable(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request):
        raise httpx.ConnectError("library is down", request=request)


async def test_components_are_placed_from_the_read_model_the_library_events_keep(fresh):
    """The library announces components over the real broker; the builder places them with no HTTP lookup."""
    settings = fresh.settings()
    async with running_service(create_library, unseeded(settings)) as library, \
            running_service(lambda s: create_builder(s, library_transport=Unreachable()), settings) as builder:
        cid = (await register(library, type="evaluator"))["component_id"]
        app_id = await new_app(builder)
        task_id = await new_task(builder, app_id)

        async def known() -> bool:
            return await builder.platform.pool.fetchval(
                "SELECT count(*) FROM library_components WHERE component_id = $1", cid) == 1

        await wait_until(known, timeout=15, message="component.registered to reach the builder")
        placed = (await place(builder, app_id, task_id, cid))["components"][0]
        assert (placed["type"], placed["library_version"]) == ("evaluator", "1.0.0")

        await call(library, "PATCH", f"/components/{cid}", json={"image": {"registry": "r.io/new", "tag": "2"}})

        async def updated() -> bool:
            snapshot = await builder.platform.pool.fetchval(
                "SELECT snapshot FROM library_components WHERE component_id = $1", cid)
            return snapshot["version"] == "1.0.1"

        await wait_until(updated, timeout=15, message="component.updated to reach the builder")
        second = await new_task(builder, app_id)
        assert (await place(builder, app_id, second, cid))["components"][0]["image"] == {"registry": "r.io/new",
                                                                                       "tag": "2"}
        # what was already placed keeps its copy: an App changes only when its author changes it
        assert (await call(builder, "GET", f"/apps/{app_id}/tasks/{task_id}"))["components"][0]["image"]["tag"] == "1.0"

        answer = await place(builder, app_id, task_id, "CL-REF-404", expect=503)
        assert answer["detail"]["code"] == "unavailable" and "CL-REF-404" in answer["detail"]["message"]
