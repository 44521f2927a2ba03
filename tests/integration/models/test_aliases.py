from services.models.main import create_app
from tests.integration.models.helpers import (EventTap, announce, make_model, models_settings, owned_by,
                                              owner_changed_event, unique)
from tests.support.services import running_service


async def test_alias_moves_atomically_rolls_back_and_keeps_history(fresh, s3):
    app_id = unique("APP")
    async with running_service(create_app, models_settings(fresh)) as svc:
        tap = await EventTap.bound(fresh.rabbitmq_url, "model.alias_moved")
        await owned_by(svc, fresh, app_id, "kim")  # kim, a researcher, owns the App: she moves its aliases
        v1, v2, v3 = [await make_model(svc, fresh, s3, app_id, metrics={"final_reward": r}) for r in (10, 20, 30)]
        researcher = svc.headers("researcher", user="kim")
        url = f"/apps/{app_id}/aliases/production"

        for model in (v1, v2, v3):
            moved = await svc.client.put(url, json={"model_id": model["model_id"]}, headers=researcher)
            assert moved.status_code == 200 and moved.json()["changed"] and moved.json()["moved_by"] == "kim"
        assert moved.json()["previous_model_id"] == v2["model_id"] and moved.json()["version"] == 3
        again = await svc.client.put(url, json={"model_id": v3["model_id"]}, headers=researcher)
        assert again.status_code == 200 and not again.json()["changed"]

        back = await svc.client.post(f"{url}/rollback", headers=researcher)
        assert back.status_code == 200 and back.json()["model_id"] == v2["model_id"]
        back = await svc.client.post(f"{url}/rollback", headers=researcher)
        assert back.json()["model_id"] == v1["model_id"] and back.json()["action"] == "rollback"
        nothing = await svc.client.post(f"{url}/rollback", headers=researcher)
        assert nothing.status_code == 409 and nothing.json()["detail"]["code"] == "nothing_to_roll_back"
        assert "no earlier model" in nothing.json()["detail"]["message"]

        view = (await svc.client.get(f"/apps/{app_id}/aliases", headers=svc.headers("viewer"))).json()
        [production] = view["aliases"]
        assert production["model_id"] == v1["model_id"] and production["version"] == 1
        assert [(h["action"], h["to_model_id"]) for h in production["history"]] == [
            ("rollback", v1["model_id"]), ("rollback", v2["model_id"]), ("move", v3["model_id"]),
            ("move", v2["model_id"]), ("move", v1["model_id"])]
        detail = (await svc.client.get(f"/models/{v1['model_id']}", headers=svc.headers("viewer"))).json()
        assert detail["aliases"] == ["production"]
        one = await svc.client.get(f"{url}", headers=svc.headers("viewer"))
        assert one.status_code == 200 and one.json()["model_id"] == v1["model_id"]

    # the relay publishes a batch concurrently: consumers order alias events by their sequence
    moves = sorted((m["data"] for m in await tap.wait_for("model.alias_moved", 5)), key=lambda d: d["sequence"])
    assert [m["action"] for m in moves] == ["move", "move", "move", "rollback", "rollback"]
    assert moves[-1] | {"sequence": None} == {
        "app_id": app_id, "alias": "production", "model_id": v1["model_id"], "version": 1,
        "previous_model_id": v2["model_id"], "action": "rollback", "moved_by": "kim", "sequence": None}


async def test_verification_gate_refuses_a_model_below_the_threshold(fresh, s3):
    app_id = unique("APP")
    async with running_service(create_app, models_settings(fresh)) as svc:
        good = await make_model(svc, fresh, s3, app_id, metrics={"final_reward": 80.0})
        weak = await make_model(svc, fresh, s3, app_id, metrics={"final_reward": 12.5})
        url, admin = f"/apps/{app_id}/aliases/production", svc.headers("admin")
        gate = {"metric": "final_reward", "min": 50}

        promoted = await svc.client.put(url, json={"model_id": good["model_id"], "gate": gate}, headers=admin)
        assert promoted.status_code == 200 and promoted.json()["gate_observed"] == 80.0

        refused = await svc.client.put(url, json={"model_id": weak["model_id"], "gate": gate}, headers=admin)
        assert refused.status_code == 409
        assert refused.json()["detail"] == {
            "code": "gate_failed", "observed": 12.5, "gate": {"metric": "final_reward", "min": 50.0, "max": None},
            "message": f"verification gate failed: final_reward = 12.5 of model {weak['model_id']} is below the "
                       f"required minimum 50; alias production still points at {good['model_id']}"}
        unknown = await svc.client.put(url, json={"model_id": weak["model_id"],
                                                  "gate": {"metric": "accuracy", "min": 0.9}}, headers=admin)
        assert unknown.status_code == 409 and "does not report metric 'accuracy'" in unknown.json()["detail"]["message"]
        per_component = await svc.client.put(url, json={"model_id": weak["model_id"],
                                                        "gate": {"metric": "rl-agent.final_reward", "max": 20}},
                                             headers=admin)
        assert per_component.status_code == 200
        no_bound = await svc.client.put(url, json={"model_id": weak["model_id"], "gate": {"metric": "x"}},
                                        headers=admin)
        assert no_bound.status_code == 422

        history = (await svc.client.get(f"{url}", headers=admin)).json()["history"]
        assert [h["to_model_id"] for h in history] == [weak["model_id"], good["model_id"]]
        assert history[1]["gate"] == {"metric": "final_reward", "min": 50.0, "max": None}


async def test_alias_refuses_foreign_unknown_and_stale_moves(fresh, s3):
    app_id, other_app = unique("APP"), unique("APP")
    async with running_service(create_app, models_settings(fresh)) as svc:
        mine = await make_model(svc, fresh, s3, app_id)
        theirs = await make_model(svc, fresh, s3, other_app)
        admin, url = svc.headers("admin"), f"/apps/{app_id}/aliases/staging"

        foreign = await svc.client.put(url, json={"model_id": theirs["model_id"]}, headers=admin)
        assert foreign.status_code == 409 and foreign.json()["detail"]["code"] == "other_app"
        assert f"belongs to app {other_app}" in foreign.json()["detail"]["message"]
        unknown = await svc.client.put(url, json={"model_id": "MDL-ffffffff"}, headers=admin)
        assert unknown.status_code == 404 and unknown.json()["detail"] == "model MDL-ffffffff not found"
        stale = await svc.client.put(url, json={"model_id": mine["model_id"], "expected_model_id": "MDL-12345678"},
                                     headers=admin)
        assert stale.status_code == 409 and stale.json()["detail"]["code"] == "alias_moved"
        assert stale.json()["detail"]["current_model_id"] is None
        assert "moved meanwhile" in stale.json()["detail"]["message"]
        bad_name = await svc.client.put(f"/apps/{app_id}/aliases/Prod%20X", json={"model_id": mine["model_id"]},
                                        headers=admin)
        assert bad_name.status_code == 422
        extra = await svc.client.put(url, json={"model_id": mine["model_id"], "force": True}, headers=admin)
        assert extra.status_code == 422
        missing = await svc.client.post(f"/apps/{app_id}/aliases/nope/rollback", headers=admin)
        assert missing.status_code == 404 and missing.json()["detail"] == f"alias nope of app {app_id} not found"


async def test_viewers_read_and_download_but_only_researchers_and_admins_promote(fresh, s3):
    app_id = unique("APP")
    async with running_service(create_app, models_settings(fresh)) as svc:
        await owned_by(svc, fresh, app_id, "researcher-user")  # the researcher below owns the App
        model = await make_model(svc, fresh, s3, app_id)
        viewer = svc.headers("viewer")
        for path in ("/models", f"/models/{model['model_id']}", f"/models/{model['model_id']}/download",
                     f"/apps/{app_id}/models", f"/apps/{app_id}/aliases"):
            assert (await svc.client.get(path, headers=viewer)).status_code == 200, path
            assert (await svc.client.get(path)).status_code == 401, path

        url = f"/apps/{app_id}/aliases/production"
        refused = await svc.client.put(url, json={"model_id": model["model_id"]}, headers=viewer)
        assert refused.status_code == 403 and "requires admin or researcher" in refused.json()["detail"]
        assert (await svc.client.post(f"{url}/rollback", headers=viewer)).status_code == 403
        for role in ("researcher", "admin"):
            moved = await svc.client.put(url, json={"model_id": model["model_id"]}, headers=svc.headers(role))
            assert moved.status_code == 200, role


OWNER_ONLY = "only its owner or an admin may change it"


async def test_another_researcher_may_not_move_nor_roll_back_the_apps_aliases_and_nothing_moves(fresh, s3):
    app_id = unique("APP")
    async with running_service(create_app, models_settings(fresh)) as svc:
        tap = await EventTap.bound(fresh.rabbitmq_url, "model.alias_moved")
        await owned_by(svc, fresh, app_id, "kim")
        v1, v2 = [await make_model(svc, fresh, s3, app_id) for _ in range(2)]
        url, kim, lee = f"/apps/{app_id}/aliases/production", svc.headers("researcher", "kim"), svc.headers(
            "researcher", "lee")
        for model in (v1, v2):
            assert (await svc.client.put(url, json={"model_id": model["model_id"]}, headers=kim)).status_code == 200
        before = (await svc.client.get(url, headers=lee)).json()

        moved = await svc.client.put(url, json={"model_id": v1["model_id"]}, headers=lee)
        assert moved.status_code == 403
        assert moved.json()["detail"] == f"app {app_id} belongs to 'kim'; {OWNER_ONLY}"
        back = await svc.client.post(f"{url}/rollback", headers=lee)
        assert back.status_code == 403 and back.json()["detail"] == moved.json()["detail"]
        new = await svc.client.put(f"/apps/{app_id}/aliases/staging", json={"model_id": v1["model_id"]}, headers=lee)
        assert new.status_code == 403

        assert (await svc.client.get(url, headers=lee)).json() == before
        assert [a["alias"] for a in (await svc.client.get(f"/apps/{app_id}/aliases", headers=lee)).json()["aliases"]
                ] == ["production"]
        # an admin may all the same
        admin = svc.headers("admin", "root")
        by_admin = await svc.client.put(url, json={"model_id": v1["model_id"]}, headers=admin)
        assert by_admin.status_code == 200 and by_admin.json()["moved_by"] == "root"
        assert (await svc.client.post(f"{url}/rollback", headers=admin)).json()["model_id"] == v2["model_id"]
        # while the service runs: its outbox publishes the moves (a refused one published nothing)
        moves = await tap.wait_for("model.alias_moved", 4)
    assert sorted(m["data"]["moved_by"] for m in moves) == ["kim", "kim", "root", "root"]


async def test_an_app_whose_owner_the_service_does_not_know_has_its_aliases_moved_by_an_admin_only(fresh, s3):
    unheard, platforms = unique("APP"), unique("APP")
    async with running_service(create_app, models_settings(fresh)) as svc:
        await owned_by(svc, fresh, platforms, None)  # the builder says: the platform's
        for app_id in (unheard, platforms):
            model = await make_model(svc, fresh, s3, app_id)
            url = f"/apps/{app_id}/aliases/production"
            refused = await svc.client.put(url, json={"model_id": model["model_id"]},
                                           headers=svc.headers("researcher", "kim"))
            assert refused.status_code == 403, app_id
            assert refused.json()["detail"] == (f"app {app_id} belongs to the platform (no owner); "
                                                "only an admin may change it")
            assert (await svc.client.get(f"/apps/{app_id}/aliases", headers=svc.headers("viewer"))).json()[
                "aliases"] == []
            moved = await svc.client.put(url, json={"model_id": model["model_id"]}, headers=svc.headers("admin"))
            assert moved.status_code == 200, app_id
            back = await svc.client.post(f"{url}/rollback", headers=svc.headers("researcher", "kim"))
            assert back.status_code == 403, app_id


async def test_after_a_transfer_the_new_owner_moves_the_aliases_and_the_old_one_may_not(fresh, s3):
    app_id = unique("APP")
    async with running_service(create_app, models_settings(fresh)) as svc:
        await owned_by(svc, fresh, app_id, "kim")
        v1, v2 = [await make_model(svc, fresh, s3, app_id) for _ in range(2)]
        url, kim, lee = f"/apps/{app_id}/aliases/production", svc.headers("researcher", "kim"), svc.headers(
            "researcher", "lee")
        assert (await svc.client.put(url, json={"model_id": v1["model_id"]}, headers=kim)).status_code == 200

        await announce(svc, fresh, owner_changed_event(app_id, "lee", previous="kim"))

        refused = await svc.client.put(url, json={"model_id": v2["model_id"]}, headers=kim)
        assert refused.status_code == 403 and refused.json()["detail"] == f"app {app_id} belongs to 'lee'; {OWNER_ONLY}"
        assert (await svc.client.post(f"{url}/rollback", headers=kim)).status_code == 403
        moved = await svc.client.put(url, json={"model_id": v2["model_id"]}, headers=lee)
        assert moved.status_code == 200 and moved.json()["moved_by"] == "lee"
        back = await svc.client.post(f"{url}/rollback", headers=lee)
        assert back.status_code == 200 and back.json()["model_id"] == v1["model_id"]


async def test_list_searches_pages_and_compare_lines_up_metrics(fresh, s3):
    app_id = unique("APP")
    async with running_service(create_app, models_settings(fresh)) as svc:
        a = await make_model(svc, fresh, s3, app_id, metrics={"final_reward": 1.0, "loss": 0.4})
        b = await make_model(svc, fresh, s3, app_id, metrics={"final_reward": 3.0})
        viewer = svc.headers("viewer")

        first = (await svc.client.get("/models", params={"page_size": 1}, headers=viewer)).json()
        second = (await svc.client.get("/models", params={"page_size": 1, "page": 2}, headers=viewer)).json()
        assert first["total"] == 2 and [first["items"][0]["model_id"], second["items"][0]["model_id"]] == [
            b["model_id"], a["model_id"]]
        found = (await svc.client.get("/models", params={"q": "designopt-v1"}, headers=viewer)).json()
        assert [m["model_id"] for m in found["items"]] == [a["model_id"]]
        assert (await svc.client.get("/models", params={"q": "100%"}, headers=viewer)).json()["total"] == 0
        summary = first["items"][0]
        assert {"name", "workload_id", "created_at", "size_bytes", "status"} <= set(summary)

        compared = await svc.client.get("/models/compare", params={"ids": f"{a['model_id']},{b['model_id']}"},
                                        headers=viewer)
        assert compared.status_code == 200
        assert compared.json()["metrics"]["final_reward"] == {a["model_id"]: 1.0, b["model_id"]: 3.0}
        assert compared.json()["metrics"]["loss"] == {a["model_id"]: 0.4, b["model_id"]: None}
        missing = await svc.client.get("/models/compare", params={"ids": f"{a['model_id']},MDL-00000000"},
                                       headers=viewer)
        assert missing.status_code == 404 and missing.json()["detail"] == "models not found: MDL-00000000"
        single = await svc.client.get("/models/compare", params={"ids": a["model_id"]}, headers=viewer)
        assert single.status_code == 422

        ready = (await svc.client.get("/readyz")).json()
        assert ready["status"] == "ready" and "s3" in ready["checked"]
