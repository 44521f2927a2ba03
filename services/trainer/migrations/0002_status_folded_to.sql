-- The time of the latest timeline event the request's status was folded from: an event at or after it
-- updates the status in the statement that appends it (no timeline read); an earlier one re-derives it.
ALTER TABLE training_requests ADD COLUMN last_event_at TIMESTAMPTZ;
UPDATE training_requests r SET last_event_at = (SELECT max(t.occurred_at) FROM timeline t WHERE t.workload_id = r.workload_id);
