-- The seed's `info` table for SQLite, behaving like the MariaDB one: AUTOINCREMENT hands
-- out the next id after the largest ever stored, and a client-given id moves it on.
-- Money is kept in whole cents, an exact integer, because SQLite has no DECIMAL type (it
-- would store 0.1 + 0.2 as a float). `seq` is the insertion order "newest first" pages by.
CREATE TABLE IF NOT EXISTS info (
    id INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id BETWEEN 1 AND 2147483647),
    name TEXT NOT NULL CHECK (length(name) <= 64),
    money_cents INTEGER NOT NULL CHECK (abs(money_cents) < 1000000000000),
    seq INTEGER NOT NULL UNIQUE
);
