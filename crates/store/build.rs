// Re-embed the migrations (sqlx::migrate!) whenever a SQL file changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
