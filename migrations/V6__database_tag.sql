-- Version 6: window ids unique across databases.
--
-- Window ids were `iw-<time of the trigger>-<row id>`, unique in one
-- database but not across two: two hosts whose first windows opened in the
-- same second had the same id, and merging their exports dropped one. Each
-- database now draws a random tag once, and new ids carry it:
-- `iw-<time>-<tag>-<row id>`. Existing windows keep their ids.
CREATE TABLE store_info (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    -- 8 hex digits, random, drawn when the database is created or upgraded.
    tag TEXT NOT NULL CHECK (length(tag) = 8)
);
INSERT INTO store_info (id, tag) VALUES (1, lower(hex(randomblob(4))));
