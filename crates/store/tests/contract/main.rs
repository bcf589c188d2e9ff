//! The store's contract suite: every case runs against SQLite (temp file) and MySQL/MariaDB
//! (a fresh database per test on `MSGRELAY_TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306/`).
//! MySQL cases are skipped with a notice when the server is unreachable, or fail under
//! `MSGRELAY_TEST_REQUIRE_EXTERNAL=1` (the skip policy of `msgrelay-testkit`).

mod clients;
mod harness;
mod messages;
mod sessions;
mod users;

macro_rules! contract_tests {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::harness::run(crate::harness::Backend::Sqlite, crate::$module::$name).await
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::harness::run(crate::harness::Backend::Mysql, crate::$module::$name).await
                }
            )*
        }
    };
}

contract_tests!(
    harness::reconnect_is_idempotent,
    users::users_create_and_login,
    users::disabling_and_reset_end_sessions,
    users::sql_metacharacters_in_names_are_data,
    sessions::sessions_expire_and_delete,
    sessions::api_tokens_lifecycle,
    sessions::api_token_scopes_and_expiry,
    clients::clients_and_ownership,
    clients::certificates_and_registry,
    messages::register_then_deliver,
    messages::deliver_then_late_register_stays_delivered,
    messages::deliver_twice_is_idempotent,
    messages::large_batches_are_chunked,
    messages::fail_requeue_and_purge,
    messages::list_filters_and_pagination,
    messages::visibility_by_owner,
    messages::filter_values_with_sql_metacharacters,
    messages::concurrent_overlapping_deliveries,
);
