//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!`
//! embeds the migrations at compile time, and cargo does not know that it
//! reads those files (sqlx's documented recipe).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
