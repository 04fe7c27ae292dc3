//! `otpd backup --to FILE`: the command-line face of `app::backup`.

use crate::config::Config;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BackupArgs {
    /// The new file to write (never overwritten). The service may keep running.
    #[arg(long)]
    to: PathBuf,
}

pub async fn run(args: BackupArgs, config: &Config) -> anyhow::Result<()> {
    let report = crate::app::backup(&config.store.url, &args.to, config.store.pool).await?;
    for (table, rows) in &report.tables {
        println!("{table}: {rows} rows");
    }
    eprintln!(
        "backup written to {} ({} bytes, schema version {}); integrity check passed",
        report.path.display(),
        report.bytes,
        report.schema_version
    );
    Ok(())
}
