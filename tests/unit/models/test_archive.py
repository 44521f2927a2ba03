import io
import os
import tarfile

from services.models.archive import Member, archive_size, layout


def stream(entries, trailer, bodies):
    out = io.BytesIO()
    for entry in entries:
        out.write(entry.header)
        out.write(bodies[entry.member.path])
        out.write(b"\0" * entry.padding)
    out.write(trailer)
    return out.getvalue()


def test_streamed_archive_is_exactly_what_tarfile_writes():
    bodies = {"rl-agent/policy.npz": os.urandom(1500), "rl-agent/metrics.json": b"{}",
              "env-simulator/empty": b"", "env-simulator/ü-name.bin": os.urandom(512)}
    members = [Member(path, len(body), f"APP/1/{path}") for path, body in bodies.items()]
    entries, trailer = layout(members, mtime=1_700_000_000)
    data = stream(entries, trailer, bodies)

    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, body in bodies.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(body), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(body))
    assert data == expected.getvalue()
    assert archive_size(entries, trailer) == len(data)


def test_archive_reads_back_with_every_file():
    bodies = {"a/x": b"hello", "b/y": os.urandom(10_000)}
    entries, trailer = layout([Member(p, len(b), p) for p, b in bodies.items()], mtime=0)
    with tarfile.open(fileobj=io.BytesIO(stream(entries, trailer, bodies))) as tar:
        assert {m.name: tar.extractfile(m).read() for m in tar.getmembers()} == bodies


def test_an_empty_model_is_an_empty_archive():
    entries, trailer = layout([], mtime=0)
    assert entries == [] and len(trailer) == tarfile.RECORDSIZE
