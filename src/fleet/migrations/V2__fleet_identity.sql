-- incident-recorder central (fleet) schema, version 2: the database names itself.
--
-- A node marks a window pushed per central database (its local
-- `push_targets`, docs/schema.md). It tells central databases apart by this
-- row, created with the schema: a database dropped and created again, or a
-- new one at the same URL, has another uuid, so the node sends it what it
-- still has. (With the database's oid: a dump restored into a new database
-- is another one too; a restore in place is found by `push --verify`.)
--
-- Additive: pushers of version 1 write here as before.

CREATE TABLE fleet_identity (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    uuid    uuid NOT NULL DEFAULT gen_random_uuid(),
    created timestamptz NOT NULL DEFAULT now()
);
INSERT INTO fleet_identity DEFAULT VALUES;
