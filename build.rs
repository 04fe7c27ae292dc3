//! Rebuilds when a migration is added or changed: `sqlx::migrate!` embeds the migrations at
//! compile time, and without this a new file in `migrations/` would not be seen until some Rust
//! source changed (sqlx's documented recipe).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
