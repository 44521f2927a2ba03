import pytest

from services.kit.instrument import query_summary, s3_operation


@pytest.mark.parametrize("query, expected", [
    ("SELECT * FROM jobs WHERE job_id = $1", ("SELECT", "jobs")),
    ("  insert into outbox (event_id) values ($1)", ("INSERT", "outbox")),
    ("UPDATE runs SET status = $2 WHERE run_id = $1", ("UPDATE", "runs")),
    ("DELETE FROM inbox WHERE received_at < $1", ("DELETE", "inbox")),
    ("WITH x AS (SELECT 1) UPDATE models m SET status = 'stored' FROM x", ("UPDATE", "models")),
    ("WITH added AS (INSERT INTO outbox (id) VALUES ($1) RETURNING id) SELECT pg_notify($2, '') FROM added",
     ("INSERT", "outbox")),
    ("WITH due AS (SELECT id FROM jobs FOR UPDATE SKIP LOCKED) SELECT * FROM due", ("SELECT", "jobs")),
    ("SELECT pg_notify($1, '')", ("SELECT", None)),
    ("-- a comment\nSELECT count(*) FROM outbox", ("SELECT", "outbox")),
    ("", ("QUERY", None)),
])
def test_query_summary(query, expected):
    assert query_summary(query) == expected


@pytest.mark.parametrize("method, bucket, key, query, operation", [
    ("GET", "b", "k", {}, "GetObject"),
    ("HEAD", "b", "k", {}, "HeadObject"),
    ("PUT", "b", "k", {}, "PutObject"),
    ("PUT", "b", "k", {"partNumber": "2", "uploadId": "u"}, "UploadPart"),
    ("POST", "b", "k", {"uploads": ""}, "CreateMultipartUpload"),
    ("POST", "b", "k", {"uploadId": "u"}, "CompleteMultipartUpload"),
    ("DELETE", "b", "k", {"uploadId": "u"}, "AbortMultipartUpload"),
    ("DELETE", "b", "k", {}, "DeleteObject"),
    ("GET", "b", None, {"list-type": "2"}, "ListObjects"),
    ("GET", "b", None, {"location": ""}, "GetBucketLocation"),
    ("HEAD", "b", None, {}, "HeadBucket"),
    ("PUT", "b", None, {}, "CreateBucket"),
    ("POST", "b", None, {"delete": ""}, "DeleteObjects"),
    ("GET", None, None, {}, "ListBuckets"),
])
def test_s3_operation(method, bucket, key, query, operation):
    assert s3_operation(method, bucket, key, query) == operation
