-- msgrelay database and least-privilege user for MySQL 8 / MariaDB 10.6+.
--
-- Run once as an administrative user, after replacing CHANGE_ME with a long random password:
--   mysql -u root -p < setup.sql                 (Linux)
--   mysql.exe -u root -p -e "source C:/msgrelay/setup.sql"   (Windows; forward slashes)
-- msgrelay creates and upgrades its tables itself ("msgrelay db migrate", also run at start-up),
-- which is why the user may CREATE, ALTER, INDEX, DROP and REFERENCE (foreign keys) inside
-- this one database - and nothing outside it.
-- Then set database.url = "mysql://msgrelay:PASSWORD@DBHOST:3306/msgrelay" (or the environment
-- variable MSGRELAY_DATABASE__URL), percent-encoding special characters of the password.

CREATE DATABASE IF NOT EXISTS msgrelay
    CHARACTER SET utf8mb4
    COLLATE utf8mb4_bin;

-- '%' = from any host. Narrow it to the main server's address where you can,
-- e.g. 'msgrelay'@'10.0.0.5' or 'msgrelay'@'localhost' when MySQL runs on the same host.
CREATE USER IF NOT EXISTS 'msgrelay'@'%' IDENTIFIED BY 'CHANGE_ME';

-- REFERENCES is needed to create the schema's foreign keys (MySQL 5.7 and later check it).
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, REFERENCES
    ON msgrelay.* TO 'msgrelay'@'%';

-- Encrypted connections. When the database is on another host, require TLS for this user:
-- the server must have TLS configured (MySQL 8 creates certificates automatically; MariaDB
-- before 11.4 needs ssl_cert/ssl_key in its configuration; check with
-- SHOW VARIABLES LIKE 'have_ssl';  which must say YES). Then run:
--   ALTER USER 'msgrelay'@'%' REQUIRE SSL;
-- and let msgrelay verify the server:  ...?ssl-mode=verify_identity&ssl-ca=/path/to/mysql-ca.pem
-- appended to database.url. Without REQUIRE SSL the password and the (already encrypted)
-- message data still cross the network in the clear.

-- Durability. msgrelay records messages with transactions; only with
--   innodb_flush_log_at_trx_commit = 1   (the default)
-- is a committed transaction on disk when the commit returns. 0 or 2 can lose the last second
-- of commits on a crash or power loss; msgrelay logs a warning at start-up if it is not 1.
-- Also keep sync_binlog = 1 when binary logging (replication, point-in-time recovery) is on.
-- Check:  SELECT @@innodb_flush_log_at_trx_commit, @@sync_binlog;
-- Set in my.cnf / my.ini under [mysqld]:
--   innodb_flush_log_at_trx_commit = 1
--   sync_binlog = 1

-- A separate read-only account for backups (mysqldump --single-transaction needs no locks):
-- CREATE USER 'msgrelay_backup'@'localhost' IDENTIFIED BY 'CHANGE_ME_TOO';
-- GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON msgrelay.* TO 'msgrelay_backup'@'localhost';
-- MySQL 8.0.21+ also needs:  GRANT PROCESS ON *.* TO 'msgrelay_backup'@'localhost';
--   (or run mysqldump with --no-tablespaces)
