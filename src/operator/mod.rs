//! Operator commands for keys and imports (`otpd keys …`, `otpd user import`): their arguments and
//! the one call `main` makes for each. Kept apart from `main.rs` so the binary stays argument
//! parsing only; the rules live in `service` (`keys`, `import`).

pub mod backup;
mod import_file;

use crate::config::Config;
use crate::service::{Services, SystemClock};
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use import_file::SubFrom;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// How many password/PIN hashes each pepper id and parameter set holds, and device TOTP
    /// secrets per TOTP key id (never a secret). Fails when stored data needs a key that is not
    /// loaded.
    Status,
    /// Seal every device TOTP secret under the current TOTP key, in batches, while the service
    /// runs. Safe to interrupt and run again.
    ReencryptTotp {
        /// Devices per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch_size: u32,
    },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["file", "keycloak"])))]
pub struct ImportArgs {
    /// JSON Lines: one {"sub", "password_hash"?, "pin_hash"?} object per line ("-": standard input).
    pub file: Option<PathBuf>,
    /// A Keycloak realm export or users export (JSON) instead.
    #[arg(long, value_name = "EXPORT.json")]
    pub keycloak: Option<PathBuf>,
    /// Which Keycloak user field becomes the otpd user id (the access token's `sub` is Keycloak's `id`).
    #[arg(long, value_enum, default_value_t = SubFrom::Id)]
    pub sub_from: SubFrom,
    /// Replace a credential the user already has (by default it is kept, so a re-run changes nothing).
    #[arg(long)]
    pub overwrite: bool,
}

async fn services(config: &Config) -> anyhow::Result<Services> {
    crate::app::services(config, Arc::new(SystemClock)).await
}

/// `otpd keys …`
pub async fn keys(cmd: KeysCommand, config: &Config) -> anyhow::Result<()> {
    let services = services(config).await?;
    match cmd {
        KeysCommand::Status => {
            let report = services.key_report().await?;
            print!("{report}");
            if !report.is_healthy() {
                anyhow::bail!(
                    "stored credentials need keys that are not loaded (see PROBLEM above)"
                );
            }
        }
        KeysCommand::ReencryptTotp { batch_size } => {
            let report = services
                .reencrypt_totp(batch_size, |r| {
                    eprintln!(
                        "re-encrypted {} device secrets so far ({} changed meanwhile, {} unreadable)",
                        r.resealed, r.changed_meanwhile, r.unreadable
                    );
                })
                .await?;
            println!(
                "re-encrypted {} device secrets under TOTP key `{}`; {} changed meanwhile; {} unreadable",
                report.resealed,
                services.totp_keys.current_id(),
                report.changed_meanwhile,
                report.unreadable
            );
            if report.unreadable > 0 {
                anyhow::bail!(
                    "{} device secrets could not be opened with any loaded key (the log names them)",
                    report.unreadable
                );
            }
        }
    }
    Ok(())
}

/// `otpd user import …`
pub async fn import(args: ImportArgs, config: &Config) -> anyhow::Result<()> {
    let services = services(config).await?;
    let (items, reader) = match (&args.keycloak, &args.file) {
        (Some(path), _) => import_file::keycloak(open(path)?, args.sub_from),
        (None, Some(path)) => import_file::json_lines(open(path)?),
        (None, None) => anyhow::bail!("give a JSON Lines file or --keycloak EXPORT.json"),
    };
    let unit = if args.keycloak.is_some() {
        "user"
    } else {
        "line"
    };
    let mut reporter = import_file::StderrReporter::new(unit);
    let summary = services
        .import_users(items, args.overwrite, &mut reporter)
        .await?;
    // The reader ends when the input does; its own failure (unreadable file) comes out here.
    reader.await.context("the import reader stopped")??;
    print!("{summary}");
    let refused = summary.refused_total();
    if refused > 0 {
        anyhow::bail!("{refused} entries refused (reasons above); the others were imported");
    }
    Ok(())
}

fn open(path: &Path) -> anyhow::Result<Box<dyn std::io::Read + Send>> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::stdin()));
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Box::new(file))
}

/// `otpd check-config`'s look at the stored data: are all keys it needs loaded? Skipped (with a
/// note) when the database is not there yet or cannot be reached.
pub async fn check_stored_keys(config: &Config) -> anyhow::Result<()> {
    if sqlite_file_missing(&config.store.url) {
        eprintln!("note: the database does not exist yet; stored key ids not checked");
        return Ok(());
    }
    let services = match services(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("note: stored key ids not checked: {e:#}");
            return Ok(());
        }
    };
    let report = services.key_report().await?;
    for problem in &report.problems {
        eprintln!("PROBLEM: {problem}");
    }
    if !report.is_healthy() {
        anyhow::bail!("stored credentials need keys that are not loaded");
    }
    Ok(())
}

/// True for a `sqlite:` URL whose file does not exist (checking must not create it).
fn sqlite_file_missing(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return false;
    };
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    !path.is_empty() && path != ":memory:" && !Path::new(path).exists()
}

impl ValueEnum for SubFrom {
    fn value_variants<'a>() -> &'a [Self] {
        &[SubFrom::Id, SubFrom::Username, SubFrom::Email]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            SubFrom::Id => "id",
            SubFrom::Username => "username",
            SubFrom::Email => "email",
        }))
    }
}
