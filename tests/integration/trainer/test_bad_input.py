"""The trainer's edge: `?q=` takes % and _ literally, and a submission's free-form training config is
bounded (422 naming the field, nothing recorded)."""
from __future__ import annotations

from contracts.bounded_json import MAX_DEPTH
from tests.integration.approval.saga import trainer_service
from tests.integration.trainer.test_trainer_service import ready, spec_created
from tests.unit.approval.factory import seed_spec
from tests.unit.kit.test_bounded_json import nested


async def test_app_search_takes_percent_and_underscore_literally(fresh):
    async with trainer_service(fresh) as svc:
        await spec_created(fresh.rabbitmq_url, seed_spec(app_id="APP-50FF00", name="50%_off"))
        await spec_created(fresh.rabbitmq_url, seed_spec(app_id="APP-50FF01", name="50xyoff"))
        await ready(svc, "APP-50FF00", "1.0.0")
        await ready(svc, "APP-50FF01", "1.0.0")
        viewer = svc.headers("viewer")
        literal = (await svc.client.get("/apps", params={"q": "50%_"}, headers=viewer)).json()
        underscore = (await svc.client.get("/apps", params={"q": "_"}, headers=viewer)).json()
        both = (await svc.client.get("/apps", params={"q": "50"}, headers=viewer)).json()
    assert [item["name"] for item in literal["items"]] == ["50%_off"] and literal["total"] == 1
    assert [item["name"] for item in underscore["items"]] == ["50%_off"]
    assert both["total"] == 2


async def test_a_deep_training_config_is_refused_naming_the_field_and_nothing_is_recorded(fresh):
    async with trainer_service(fresh) as svc:
        await spec_created(fresh.rabbitmq_url, seed_spec())
        await ready(svc, "APP-A1B2C3", "1.0.0")
        kim = svc.headers("researcher", user="kim")
        answers = {}
        for field, levels in (("env_config", 300), ("env_config", MAX_DEPTH + 1), ("reward_params", MAX_DEPTH + 1)):
            response = await svc.client.post("/training-requests", headers=kim, json={
                "app_id": "APP-A1B2C3", "training_config": {field: nested(levels)}})
            answers[field, levels] = response
        history = await svc.client.get("/training-requests", headers=kim)
    for (field, levels), response in answers.items():
        assert response.status_code == 422, (field, levels, response.text[:300])
        [error] = response.json()["detail"]
        assert error["type"] == "json_too_deep", error
        assert error["loc"][:3] == ["body", "training_config", field], error
    assert history.status_code == 200 and history.json()["total"] == 0
