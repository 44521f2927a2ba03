-- The retention sweep (services/kit/retention.py) deletes inbox rows by age: a BRIN index fits rows
-- appended in time order and costs next to nothing per insert.
CREATE INDEX inbox_by_age ON inbox USING brin (received_at);
