import hashlib
import io
import os
import tarfile

from services.models.main import create_app
from tests.integration.models.helpers import make_model, models_settings, unique
from tests.support.services import running_service


async def test_download_equals_upload_and_ranges_work(fresh, s3):
    body = os.urandom(5 * 1024 * 1024 + 4321)
    files = {"policy.npz": body, "metrics.json": b'{"final_reward": 1}', "empty.txt": b""}
    async with running_service(create_app, models_settings(fresh)) as svc:
        model = await make_model(svc, fresh, s3, unique("APP"), files=files)
        url, viewer = f"/models/{model['model_id']}/download", svc.headers("viewer")

        whole = await svc.client.get(url, params={"file": "rl-agent/policy.npz"}, headers=viewer)
        assert whole.status_code == 200 and whole.content == body
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.headers["etag"] == f'"{hashlib.sha256(body).hexdigest()}"'
        assert whole.headers["content-length"] == str(len(body))

        part = await svc.client.get(url, params={"file": "rl-agent/policy.npz"},
                                    headers={**viewer, "Range": "bytes=100-1099"})
        assert part.status_code == 206 and part.content == body[100:1100]
        assert part.headers["content-range"] == f"bytes 100-1099/{len(body)}"

        tail = await svc.client.get(url, params={"file": "rl-agent/policy.npz"},
                                    headers={**viewer, "Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == body[-10:]
        rest = await svc.client.get(url, params={"file": "rl-agent/policy.npz"},
                                    headers={**viewer, "Range": f"bytes={len(body) - 5}-"})
        assert rest.status_code == 206 and rest.content == body[-5:]

        beyond = await svc.client.get(url, params={"file": "rl-agent/policy.npz"},
                                      headers={**viewer, "Range": f"bytes={len(body)}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(body)}"
        assert "beyond the end" in beyond.json()["detail"]
        stale = await svc.client.get(url, params={"file": "rl-agent/policy.npz"},
                                     headers={**viewer, "Range": "bytes=0-9", "If-Range": '"other"'})
        assert stale.status_code == 200 and stale.content == body

        empty = await svc.client.get(url, params={"file": "rl-agent/empty.txt"}, headers=viewer)
        assert empty.status_code == 200 and empty.content == b""
        missing = await svc.client.get(url, params={"file": "rl-agent/nope"}, headers=viewer)
        assert missing.status_code == 404 and "has no file 'rl-agent/nope'" in missing.json()["detail"]

        [log] = model["run_logs"]
        assert log["download"] == f"/models/{model['model_id']}/logs/rl-agent"
        run_log = await svc.client.get(log["download"], headers=viewer)
        assert run_log.status_code == 200 and run_log.text == "Episode 0: reward=1.0\n"
        no_log = await svc.client.get(f"/models/{model['model_id']}/logs/nope", headers=viewer)
        assert no_log.status_code == 404

        archive = await svc.client.get(url, headers=viewer)
        assert archive.status_code == 200 and archive.headers["content-type"] == "application/x-tar"
        assert int(archive.headers["content-length"]) == len(archive.content)
        assert archive.headers["content-disposition"].startswith(f'attachment; filename="{model["name"]}.tar"')
        with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
            unpacked = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        assert unpacked == {f"rl-agent/{name}": data for name, data in files.items()}


async def test_unknown_model_is_404_and_a_pending_one_is_409(fresh):
    async with running_service(create_app, models_settings(fresh)) as svc:
        viewer = svc.headers("viewer")
        for path in ("/models/MDL-00000000", "/models/MDL-00000000/download"):
            response = await svc.client.get(path, headers=viewer)
            assert response.status_code == 404 and response.json()["detail"] == "model MDL-00000000 not found"
        await svc.platform.pool.execute(
            "INSERT INTO models (model_id, workload_id, app_id, app_name, version, name, workload, artifacts, metrics,"
            " next_attempt_at) VALUES ('MDL-0000000a', 'WL-x', 'APP-x', 'x', 1, 'x-v1', '{}', '[]', '{}',"
            " now() + interval '1 hour')")
        pending = await svc.client.get("/models/MDL-0000000a/download", headers=viewer)
        assert pending.status_code == 409 and pending.json()["detail"]["code"] == "not_stored"
        assert "not stored yet" in pending.json()["detail"]["message"]
