//! Crash and outage tests of the production backends: Redis Streams (AOF, fsync always) and
//! MariaDB, with real `msgrelay` proxy / worker / server processes. Every test starts its own
//! `redis-server` and `mariadbd` on free ports with temp data dirs (so it can kill them), and the
//! tests run one at a time: they kill processes and measure timings on a small machine.
//!
//! Needs the Debian packages redis-server, mariadb-server and mariadb-client.
//! Run: `cargo test -p msgrelay --test backends` (about 3 minutes on 2 cores).

mod backpressure;
mod crash;
mod database_tls;
mod outage;
mod servers;
mod startup;
mod support;
