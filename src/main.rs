//! The `otpd` command: parses arguments and calls into the library, nothing more.

use anyhow::Context;
use clap::{Parser, Subcommand};
use otpd::config::Config;
use otpd::domain::{Actor, GuardedFactor, Pin, Subject};
use otpd::service::SystemClock;
use otpd::service::admin::{AuditPageRequest, read_audit_page};
use otpd::service::credentials::NewCredential;
use otpd::telemetry::LogFormat;
use secrecy::SecretString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// mimalloc instead of glibc's malloc: a request allocates and frees many small objects across
/// threads, which glibc's arenas handle with locks and consolidation passes (docs/benchmark.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "otpd",
    version,
    about = "Passwords, PINs and one-time passwords for the PACE Cloud User API 2022-1"
)]
struct Cli {
    /// TOML configuration file; `OTPD_*` environment variables override it.
    #[arg(long, global = true, env = "OTPD_CONFIG")]
    config: Option<PathBuf>,
    /// Development mode: local signing key and pepper (created next to the database). Never for real users.
    #[arg(long, global = true)]
    dev: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Copy a SQLite deployment's data into an empty PostgreSQL database (both are migrated first).
    CopyData {
        /// The SQLite database to read, e.g. sqlite:///var/lib/otpd/otpd.db (stop its server first).
        #[arg(long)]
        from: String,
        /// The PostgreSQL database to fill; its tables must be empty. Default: the configured
        /// database_url (OTPD_DATABASE_URL), which keeps a password off the command line.
        #[arg(long)]
        to: Option<String>,
    },
    /// Validate the configuration and print it with secrets redacted.
    CheckConfig,
    /// Manage a user's credentials.
    #[command(subcommand)]
    User(UserCommand),
    /// Print a user's audit events, oldest first (time, event, detail; never a secret).
    Audit {
        sub: String,
        /// One JSON object per line instead of aligned text.
        #[arg(long)]
        json: bool,
    },
    /// Copy the SQLite database to a new file while the service runs, and verify the copy.
    Backup(otpd::operator::backup::BackupArgs),
    /// Print the OpenAPI document of the HTTP API (what GET /openapi.json serves).
    Openapi,
    /// Key rotation: which keys the stored data uses, re-encrypting device secrets.
    #[command(subcommand)]
    Keys(otpd::operator::KeysCommand),
    /// Development helpers (work only with the development key).
    #[command(subcommand)]
    Dev(DevCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Set a user's password, read from standard input (never from the command line).
    SetPassword { sub: String },
    /// Set a user's PIN, read from standard input (never from the command line).
    SetPin { sub: String },
    /// Show which factors a user has set, their failure counts and locks (never a secret).
    Show { sub: String },
    /// Import password/PIN hashes from another system (JSON Lines or a Keycloak export).
    Import(otpd::operator::ImportArgs),
    /// Clear a user's failure counts, locks and disabling (all factors unless --factor).
    Unlock {
        sub: String,
        #[arg(long, value_parser = ["pin", "password", "otp", "phone"])]
        factor: Option<String>,
    },
}

#[derive(Subcommand)]
enum DevCommand {
    /// Print an access token signed by the development key.
    Token {
        #[arg(long)]
        sub: String,
        /// Space-separated scopes (default: all scopes otpd knows).
        #[arg(long, default_value = otpd::dev::ALL_SCOPES)]
        scope: String,
        /// Lifetime in seconds (1 to 30 days' worth).
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// An `email` claim: where `POST /user/otp/sendmail` mails the OTP.
        #[arg(long)]
        email: Option<String>,
        /// The `email_verified` claim (`true` or `false`). Needs --email, with which it defaults to
        /// `true`: sendmail only mails verified addresses.
        #[arg(long)]
        email_verified: Option<bool>,
    },
    /// Benchmarks only: issue live OTPs without a proof to users PREFIX0..PREFIX<users-1> and
    /// print one `<access token> <otp>` line per OTP (scope user:otp:verify).
    BenchOtps {
        #[arg(long, default_value = "bench")]
        prefix: String,
        #[arg(long, default_value_t = 1000)]
        users: usize,
        /// OTPs per user (at most otp_max_live).
        #[arg(long, default_value_t = 3)]
        per_user: usize,
        /// Token lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

fn main() -> ExitCode {
    otpd::app::install_crypto_provider();
    let cli = Cli::parse();
    let dev = cli.dev || matches!(cli.command, Command::Dev(_));
    let config = match Config::from_env(cli.config.as_deref(), dev) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("otpd: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("otpd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("otpd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            config.require_serving_settings()?;
            otpd::telemetry::init(&config.log.filter, config.log.format);
            for warning in config.warnings() {
                tracing::warn!(%warning, "risky setting");
            }
            if config.dev {
                eprintln!(
                    "\n  *** otpd DEVELOPMENT MODE: local signing key, pepper on disk. Never use with real users. ***\n"
                );
            }
            let app = otpd::app::build(config).await?;
            app.run().await?;
        }
        Command::Migrate => {
            otpd::telemetry::init(&config.log.filter, LogFormat::Text);
            otpd::app::open_store(&config.store.url, config.store.pool).await?;
            eprintln!("database is up to date");
        }
        Command::CopyData { from, to } => {
            otpd::telemetry::init("warn", LogFormat::Text);
            let to = to.unwrap_or_else(|| config.store.url.clone());
            let report = otpd::app::copy_data(&from, &to, config.store.pool).await?;
            for (table, rows) in report {
                println!("{table}: {rows} rows");
            }
            eprintln!("copied into {}", otpd::config::redact_url_password(&to));
        }
        Command::CheckConfig => {
            config.require_serving_settings()?;
            if !config.dev {
                // Every key file, old ones included, must be readable before the service starts.
                let peppers = config.hashing.read_peppers(None)?;
                config.totp.key_ring(&peppers)?;
            }
            if let Some(mail) = &config.mail.smtp {
                // Builds the transport without connecting: catches a malformed URL or sender.
                otpd::mail::SmtpMailer::new(mail)?;
            }
            if config.dev {
                print!("{}", otpd::dev::describe_effective(&config));
            } else {
                print!("{}", config.describe());
            }
            // On stderr, so the settings on stdout stay `name = value` lines.
            for warning in config.warnings() {
                eprintln!("warning: {warning}");
            }
            otpd::operator::check_stored_keys(&config).await?;
        }
        Command::Keys(cmd) => {
            otpd::telemetry::init("warn", LogFormat::Text);
            otpd::operator::keys(cmd, &config).await?;
        }
        Command::User(cmd) => {
            otpd::telemetry::init("warn", LogFormat::Text);
            user_command(cmd, &config).await?;
        }
        Command::Audit { sub, json } => {
            otpd::telemetry::init("warn", LogFormat::Text);
            let subject =
                Subject::parse(&sub).context("the user id must be 1..255 printable characters")?;
            let store = otpd::app::open_store(&config.store.url, config.store.pool).await?;
            let mut page = AuditPageRequest::default();
            loop {
                let found = read_audit_page(store.as_ref(), &subject, page).await?;
                for event in &found.events {
                    println!("{}", event.to_line(json));
                }
                match found.next {
                    Some(after) => page.after = Some(after),
                    None => break,
                }
            }
        }
        Command::Backup(args) => {
            otpd::telemetry::init("warn", LogFormat::Text);
            otpd::operator::backup::run(args, &config).await?;
        }
        Command::Openapi => {
            println!(
                "{}",
                otpd::http::openapi::document_json(&config.http.base_path)
            );
        }
        Command::Dev(DevCommand::Token {
            sub,
            scope,
            ttl,
            email,
            email_verified,
        }) => {
            let request = otpd::dev::TokenRequest {
                sub: &sub,
                scope: &scope,
                ttl: Duration::from_secs(ttl),
                email: email.as_deref(),
                email_verified,
                admin_scope: &config.admin.scope,
            };
            // Checked before the key files are made: a refused token leaves nothing behind.
            request.check()?;
            let kit = otpd::dev::DevKit::load_or_create(&config)?;
            println!("{}", kit.mint(&request)?);
        }
        Command::Dev(DevCommand::BenchOtps {
            prefix,
            users,
            per_user,
            ttl,
        }) => {
            otpd::telemetry::init("warn", LogFormat::Text);
            let kit = otpd::dev::DevKit::load_or_create(&config)?;
            let services = Arc::new(otpd::app::services(&config, Arc::new(SystemClock)).await?);
            let ttl = Duration::from_secs(ttl);
            // Eight users at a time: filling is not what is measured, but it should not take long.
            // Lines go round the users (each user's first OTP, then each one's second, ...), so
            // a load tool reading them in order sends one user's codes far apart, as real traffic
            // would: parallel redemptions of one user meet its attempt limit (docs/lockout.md).
            let mut rounds = vec![Vec::with_capacity(users); per_user];
            for chunk in (0..users).collect::<Vec<_>>().chunks(8) {
                let mut tasks = tokio::task::JoinSet::new();
                for &i in chunk {
                    let sub = subject(&format!("{prefix}{i}"))?;
                    let token = kit.mint(&otpd::dev::TokenRequest {
                        sub: sub.as_str(),
                        scope: "user:otp:verify",
                        ttl,
                        email: None,
                        email_verified: None,
                        admin_scope: &config.admin.scope,
                    })?;
                    let services = Arc::clone(&services);
                    tasks.spawn(async move {
                        let otps = services.issue_bench_otps(&sub, per_user).await?;
                        Ok::<_, anyhow::Error>((token, otps))
                    });
                }
                while let Some(done) = tasks.join_next().await {
                    let (token, otps) = done??;
                    for (round, otp) in rounds.iter_mut().zip(otps) {
                        round.push(format!("{token} {otp}"));
                    }
                }
            }
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for line in rounds.iter().flatten() {
                writeln!(out, "{line}")?;
            }
            out.flush()?;
        }
    }
    Ok(())
}

fn subject(raw: &str) -> anyhow::Result<Subject> {
    Subject::parse(raw).context("the user id must be 1..255 printable characters")
}

async fn user_command(cmd: UserCommand, config: &Config) -> anyhow::Result<()> {
    match cmd {
        UserCommand::SetPassword { sub } => {
            let sub = subject(&sub)?;
            let secret = read_secret_from_stdin()?;
            let services = otpd::app::services(config, Arc::new(SystemClock)).await?;
            services.set_password(&sub, secret).await?;
            eprintln!("password set for {sub}");
            Ok(())
        }
        UserCommand::SetPin { sub } => {
            let sub = subject(&sub)?;
            let secret = read_secret_from_stdin()?;
            let new = NewCredential::Pin(Pin::parse(secret, config.pin)?);
            let services = otpd::app::services(config, Arc::new(SystemClock)).await?;
            services.set_credential(&sub, new).await?;
            eprintln!("PIN set for {sub}");
            Ok(())
        }
        UserCommand::Show { sub } => {
            let sub = subject(&sub)?;
            let services =
                otpd::app::services_for_inspection(config, Arc::new(SystemClock)).await?;
            print!("{}", services.user_status(&sub, &Actor::Operator).await?);
            Ok(())
        }
        UserCommand::Import(args) => otpd::operator::import(args, config).await,
        UserCommand::Unlock { sub, factor } => {
            let sub = subject(&sub)?;
            let factors = match factor.as_deref().map(GuardedFactor::parse) {
                None => GuardedFactor::ALL.to_vec(),
                Some(Some(f)) => vec![f],
                Some(None) => anyhow::bail!("--factor must be pin, password, otp or phone"),
            };
            let services =
                otpd::app::services_for_inspection(config, Arc::new(SystemClock)).await?;
            services.unlock(&sub, &factors, &Actor::Operator).await?;
            let names: Vec<&str> = factors.iter().map(|f| f.as_str()).collect();
            eprintln!("unlocked {} for {sub}", names.join(", "));
            Ok(())
        }
    }
}

/// The whole of standard input, less one trailing line break.
fn read_secret_from_stdin() -> anyhow::Result<SecretString> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        eprintln!("Type the secret, then Enter and Ctrl-D:");
    }
    let mut raw = String::new();
    std::io::stdin()
        .read_to_string(&mut raw)
        .context("reading the secret from standard input")?;
    if raw.ends_with('\n') {
        raw.pop();
        if raw.ends_with('\r') {
            raw.pop();
        }
    }
    Ok(SecretString::from(raw))
}
