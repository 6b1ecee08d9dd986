-- The seed's `info` table for SQLite, behaving like the MariaDB one: AUTOINCREMENT hands
-- out the next id after the largest ever stored, and a client-given id moves it on.
-- Ids are 64-bit: clients choose at most 2147483647 (MAX_ID), so the ids assigned after
-- theirs never run out. Tables made by older versions (CHECK up to 2147483647) are
-- rebuilt once at start-up (sqlite_store.py).
-- Money is kept in whole cents, an exact integer, because SQLite has no DECIMAL type (it
-- would store 0.1 + 0.2 as a float). `seq` is the insertion order "newest first" pages by.
CREATE TABLE IF NOT EXISTS info (
    id INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id >= 1),
    name TEXT NOT NULL CHECK (length(name) <= 64),
    money_cents INTEGER NOT NULL CHECK (abs(money_cents) < 1000000000000),
    seq INTEGER NOT NULL UNIQUE
);
