"""BL-02 secrets: an App's secret env var is stored encrypted, shown only as set / not set, named by
reference in its spec, audited when it changes, and its value leaves the builder only for the scheduler."""
from services.builder.commands import SealSecretEnvVars
from services.kit.auth import mint_service_token, mint_token
from tests.integration.builder.support import call, ready_app

VALUE = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


async def test_secret_values_are_masked_encrypted_referenced_and_audited(stack):
    library, builder = stack
    app_id = await ready_app(library, builder, name="secret-app")
    view = await call(builder, "PUT", f"/apps/{app_id}/env-vars", json={
        "AWS_SECRET_ACCESS_KEY": VALUE, "NCCL_DEBUG": "INFO", "MAX_NEW_TOKENS": "512",
        "WANDB_PROJECT": {"value": "hush", "secret": True}})
    assert view["env_vars"] == {"NCCL_DEBUG": "INFO", "MAX_NEW_TOKENS": "512"}
    assert view["secret_env_vars"] == [
        {"name": "AWS_SECRET_ACCESS_KEY", "secret": True, "set": True, "version": 1},
        {"name": "WANDB_PROJECT", "secret": True, "set": True, "version": 1}]
    for role in ("viewer", "researcher", "admin"):
        response = await builder.client.get(f"/apps/{app_id}", headers=builder.headers(role))
        assert response.status_code == 200 and VALUE not in response.text and "hush" not in response.text

    spec = await call(builder, "POST", f"/apps/{app_id}/spec", 201)
    assert spec["secret_env_vars"]["AWS_SECRET_ACCESS_KEY"] == {"service": "builder", "owner": app_id, "version": 1}
    assert VALUE not in str(spec) and "AWS_SECRET_ACCESS_KEY" not in spec["env_vars"]

    async with builder.platform.pool.acquire() as conn:  # encrypted at rest: no column holds the plain text
        raw = await conn.fetch("SELECT ciphertext FROM secret_values WHERE owner = $1", app_id)
        apps = await conn.fetchval("SELECT row_to_json(a)::text FROM apps a WHERE app_id = $1", app_id)
        specs = await conn.fetchval("SELECT string_agg(s::text, '') FROM spec_versions s WHERE app_id = $1", app_id)
    assert len(raw) == 2 and all(VALUE.encode() not in bytes(r["ciphertext"]) for r in raw)
    assert VALUE not in apps and VALUE not in specs

    # kept without its value, then changed: a new version, audited without the value
    await call(builder, "PUT", f"/apps/{app_id}/env-vars", json={"AWS_SECRET_ACCESS_KEY": {"secret": True},
                                                                  "WANDB_PROJECT": "plain-now"})
    view = await call(builder, "PUT", f"/apps/{app_id}/env-vars", json={"AWS_SECRET_ACCESS_KEY": "rotated-value"})
    assert view["secret_env_vars"] == [{"name": "AWS_SECRET_ACCESS_KEY", "secret": True, "set": True, "version": 2}]
    trail = await call(builder, "GET", f"/apps/{app_id}/env-vars/changes", role="viewer")
    assert [(c["name"], c["action"], c["version"], c["changed_by"]) for c in trail] == [
        ("AWS_SECRET_ACCESS_KEY", "set", 1, "researcher-user"), ("WANDB_PROJECT", "set", 1, "researcher-user"),
        ("WANDB_PROJECT", "removed", None, "researcher-user"),
        ("AWS_SECRET_ACCESS_KEY", "set", 2, "researcher-user")]
    assert "rotated-value" not in str(trail)


async def test_only_the_scheduler_resolves_a_reference(stack):
    library, builder = stack
    app_id = await ready_app(library, builder, name="secret-app")
    await call(builder, "PUT", f"/apps/{app_id}/env-vars", json={"HF_TOKEN": VALUE})
    body = {"run": "WL-1/1/TASK-001/C", "secrets": [{"name": "HF_TOKEN", "owner": app_id, "version": 1}]}
    url = "/internal/secrets/resolve"
    for role in ("viewer", "researcher", "admin"):
        response = await builder.client.post(url, json=body, headers=builder.headers(role))
        assert response.status_code == 403 and VALUE not in response.text
    other = {"Authorization": f"Bearer {mint_service_token(builder.settings, 'trainer')}"}
    assert (await builder.client.post(url, json=body, headers=other)).status_code == 403
    assert (await builder.client.post(url, json=body)).status_code == 401
    # a user token whose subject is "scheduler" is still a user
    user = {"Authorization": f"Bearer {mint_token(builder.settings, 'scheduler', 'admin')}"}
    assert (await builder.client.post(url, json=body, headers=user)).status_code == 403

    scheduler = {"Authorization": f"Bearer {mint_service_token(builder.settings, 'scheduler')}"}
    response = await builder.client.post(url, json=body, headers=scheduler)
    assert response.status_code == 200
    assert response.json()["values"] == [{"name": "HF_TOKEN", "owner": app_id, "version": 1, "value": VALUE}]
    missing = {**body, "secrets": [{"name": "HF_TOKEN", "owner": app_id, "version": 7}]}
    response = await builder.client.post(url, json=missing, headers=scheduler)
    assert response.status_code == 422 and "HF_TOKEN" in response.text
    assert "/internal/secrets/resolve" not in (await builder.client.get("/openapi.json")).text


async def test_a_declared_secret_without_a_value_blocks_the_spec(stack):
    library, builder = stack
    app_id = await ready_app(library, builder, name="secret-app")
    view = await call(builder, "PUT", f"/apps/{app_id}/env-vars", json={"DB_PASSWORD": {"secret": True}})
    assert view["secret_env_vars"] == [{"name": "DB_PASSWORD", "secret": True, "set": False, "version": None}]
    refused = await call(builder, "POST", f"/apps/{app_id}/spec", 422)
    assert "DB_PASSWORD has no value" in str(refused)
    await call(builder, "PUT", f"/apps/{app_id}/env-vars", 422, json={"NCCL_DEBUG": {"secret": False}})


async def test_values_written_before_secrets_existed_are_sealed_at_start(stack):
    library, builder = stack
    app_id = await ready_app(library, builder, name="legacy-app")
    await call(builder, "PUT", f"/apps/{app_id}/env-vars", json={"NCCL_DEBUG": "INFO", "HF_TOKEN": "kept-secret"})
    await call(builder, "POST", f"/apps/{app_id}/spec", 201)
    async with builder.platform.pool.acquire() as conn:  # as an App stood before: a plain secret-looking value
        await conn.execute("UPDATE apps SET env_vars = env_vars || '{\"LEGACY_PASSWORD\": \"legacy-value\"}'"
                           " WHERE app_id = $1", app_id)
        await conn.execute("INSERT INTO secret_seal_pending (app_id) VALUES ($1)", app_id)
    assert await builder.app.state.messagebus.handle(SealSecretEnvVars()) == [app_id]
    assert await builder.app.state.messagebus.handle(SealSecretEnvVars()) == []  # once
    view = await call(builder, "GET", f"/apps/{app_id}", role="viewer")
    assert view["env_vars"] == {"NCCL_DEBUG": "INFO"} and view["has_unpublished_changes"]
    assert [(s["name"], s["set"]) for s in view["secret_env_vars"]] == [("HF_TOKEN", True), ("LEGACY_PASSWORD", True)]
    async with builder.platform.pool.acquire() as conn:
        row = await conn.fetchval("SELECT row_to_json(a)::text FROM apps a WHERE app_id = $1", app_id)
        trail = await conn.fetch("SELECT name, changed_by FROM secret_changes WHERE owner = $1 ORDER BY id", app_id)
    assert "legacy-value" not in row
    assert [(r["name"], r["changed_by"]) for r in trail][-1] == ("LEGACY_PASSWORD", "platform")
    spec = await call(builder, "POST", f"/apps/{app_id}/spec", 201)
    assert set(spec["secret_env_vars"]) == {"HF_TOKEN", "LEGACY_PASSWORD"} and "legacy-value" not in str(spec)
