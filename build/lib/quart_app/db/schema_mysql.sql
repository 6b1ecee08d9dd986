-- Needs MariaDB 10.3 or later (CREATE SEQUENCE, DEFAULT NEXTVAL).
--
-- The seed's `info` table. `id` is AUTO_INCREMENT so that an insert without an id gets the
-- next one from InnoDB, race-free across connections and processes; a client-given id
-- is stored as given and moves the counter past itself, so the two never collide.
-- `id` is BIGINT while clients choose at most 2147483647 (MAX_ID): the ids assigned after
-- theirs never run out. An INT column made by an older version is widened at start-up
-- (mysql_store.py).
-- `seq` is the order rows were inserted in, which "newest first" pages by (client-given
-- ids say nothing about age); a table has only one AUTO_INCREMENT, so it comes from a
-- sequence.
CREATE SEQUENCE IF NOT EXISTS info_seq;

CREATE TABLE IF NOT EXISTS info (
    id BIGINT NOT NULL AUTO_INCREMENT,
    name VARCHAR(64) NOT NULL,
    money DECIMAL(12, 2) NOT NULL,
    seq BIGINT NOT NULL DEFAULT NEXTVAL(info_seq),
    PRIMARY KEY (id),
    UNIQUE KEY info_by_seq (seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
