-- The purge outbox: each change writes its row in the same transaction.
-- Writers take an advisory lock before inserting, so IDs are assigned and
-- committed in order and a reader after a cursor never skips a row.
CREATE TABLE purges (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tags       text[] NOT NULL,
	created_at timestamptz NOT NULL
);
CREATE INDEX purges_created ON purges (created_at);

-- Where delivery to each edge has got to.
CREATE TABLE purge_cursors (
	edge       text PRIMARY KEY,
	delivered  bigint NOT NULL,
	updated_at timestamptz NOT NULL
);

-- One row: purges with id <= pruned were deleted; an edge whose cursor is
-- below it may have missed some and gets a full purge.
CREATE TABLE purge_floor (
	one    boolean PRIMARY KEY DEFAULT true CHECK (one),
	pruned bigint NOT NULL
);
INSERT INTO purge_floor (pruned) VALUES (0);
