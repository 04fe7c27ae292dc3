//! Importing users' password and PIN hashes from another system (`otpd user import`). Entries
//! arrive one by one from a reader (JSON Lines or a Keycloak export, see `crate::operator`), are
//! checked (user id, hash format, the limits of `imported_hash`), and are written in batches.
//! Nothing is held per user beyond the current batch, so memory stays flat for any file size.

use super::clock::to_millis;
use super::imported_hash::ImportedHash;
use super::{ServiceError, Services};
use crate::domain::{Factor, Subject};
use crate::store::{ImportOutcome, ImportRow};
use std::collections::BTreeMap;
use tokio::sync::mpsc;

/// Hashes written per transaction.
const BATCH: usize = 500;
/// Distinct refusal reasons kept in the summary; further ones are counted under "other".
const MAX_REASONS: usize = 32;

/// A hash as the source wrote it.
pub enum SourceHash {
    /// A PHC string or bcrypt hash.
    Phc(String),
    /// A Keycloak `password` credential's two JSON strings.
    Keycloak {
        secret_data: String,
        credential_data: String,
    },
}

/// One user read from the input; `at` is its line (JSON Lines) or position (Keycloak users).
pub struct ImportEntry {
    pub at: u64,
    pub sub: String,
    pub password: Option<SourceHash>,
    pub pin: Option<SourceHash>,
}

pub enum ImportItem {
    Entry(ImportEntry),
    /// The input at `at` could not be read as an entry.
    Unreadable {
        at: u64,
        reason: String,
    },
    /// A user with nothing to import (e.g. a Keycloak user without a password).
    NoCredential {
        at: u64,
    },
}

/// What one import did, for the summary at the end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub entries: u64,
    /// Hashes stored where the user had none.
    pub imported: u64,
    /// Hashes stored over an existing one (`--overwrite`).
    pub replaced: u64,
    /// Hashes not stored because the user already had one.
    pub kept: u64,
    pub no_credential: u64,
    /// Refused entries by reason.
    pub refused: BTreeMap<String, u64>,
}

impl ImportSummary {
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    fn refuse(&mut self, reason: &str) {
        let key = if self.refused.len() < MAX_REASONS || self.refused.contains_key(reason) {
            reason.to_owned()
        } else {
            "other reasons".to_owned()
        };
        *self.refused.entry(key).or_default() += 1;
    }
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "entries read        {}", self.entries)?;
        writeln!(f, "hashes imported     {}", self.imported)?;
        writeln!(f, "hashes replaced     {}", self.replaced)?;
        writeln!(f, "kept (already set)  {}", self.kept)?;
        writeln!(f, "no credential       {}", self.no_credential)?;
        writeln!(f, "refused             {}", self.refused_total())?;
        for (reason, n) in &self.refused {
            writeln!(f, "  {n:>9}  {reason}")?;
        }
        Ok(())
    }
}

/// Callbacks of an import run: a refused entry (position, reason; never a hash) and progress.
pub trait ImportReporter: Send {
    fn refused(&mut self, at: u64, sub: Option<&str>, reason: &str);
    fn progress(&mut self, summary: &ImportSummary);
}

impl Services {
    /// Consumes `items` until the reader closes the channel; writes in batches of `BATCH`.
    pub async fn import_users(
        &self,
        mut items: mpsc::Receiver<ImportItem>,
        overwrite: bool,
        reporter: &mut dyn ImportReporter,
    ) -> Result<ImportSummary, ServiceError> {
        let mut summary = ImportSummary::default();
        let mut batch: Vec<ImportRow> = Vec::with_capacity(BATCH);
        while let Some(item) = items.recv().await {
            summary.entries += 1;
            match item {
                ImportItem::Unreadable { at, reason } => {
                    reporter.refused(at, None, &reason);
                    summary.refuse(&reason);
                }
                ImportItem::NoCredential { .. } => summary.no_credential += 1,
                ImportItem::Entry(entry) => match rows_of(entry) {
                    Ok(rows) => batch.extend(rows),
                    Err((at, sub, reason)) => {
                        reporter.refused(at, sub.as_deref(), &reason);
                        summary.refuse(&reason);
                    }
                },
            }
            if batch.len() >= BATCH {
                self.write_batch(&mut batch, overwrite, &mut summary)
                    .await?;
                reporter.progress(&summary);
            }
        }
        self.write_batch(&mut batch, overwrite, &mut summary)
            .await?;
        Ok(summary)
    }

    async fn write_batch(
        &self,
        batch: &mut Vec<ImportRow>,
        overwrite: bool,
        summary: &mut ImportSummary,
    ) -> Result<(), ServiceError> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = to_millis(self.clock.now());
        let outcomes = self.store.import_hashes(batch, overwrite, now).await?;
        for (row, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                ImportOutcome::Imported => summary.imported += 1,
                ImportOutcome::Replaced => summary.replaced += 1,
                ImportOutcome::Kept => summary.kept += 1,
            }
            if outcome != ImportOutcome::Kept {
                self.watch.changed(&row.sub);
            }
        }
        batch.clear();
        Ok(())
    }
}

type Refused = (u64, Option<String>, String);

/// The rows of one entry, or why the whole entry is refused (all of its hashes or none).
fn rows_of(entry: ImportEntry) -> Result<Vec<ImportRow>, Refused> {
    let at = entry.at;
    let sub = Subject::parse(&entry.sub).ok_or_else(|| {
        (
            at,
            None,
            "the user id must be 1..255 printable characters".to_owned(),
        )
    })?;
    let mut rows = Vec::with_capacity(2);
    for (factor, source) in [(Factor::Password, entry.password), (Factor::Pin, entry.pin)] {
        let Some(source) = source else { continue };
        let parsed = match &source {
            SourceHash::Phc(s) => ImportedHash::parse(s),
            SourceHash::Keycloak {
                secret_data,
                credential_data,
            } => ImportedHash::from_keycloak(secret_data, credential_data),
        }
        .map_err(|r| {
            (
                at,
                Some(entry.sub.clone()),
                format!("{}: {}", factor.as_str(), r.0),
            )
        })?;
        rows.push(ImportRow {
            sub: sub.clone(),
            factor,
            phc: parsed.to_stored(),
            audit_detail: format!("scheme={}", parsed.to_string().replace(' ', " params=")),
        });
    }
    if rows.is_empty() {
        return Err((
            at,
            Some(entry.sub),
            "neither password_hash nor pin_hash given".to_owned(),
        ));
    }
    Ok(rows)
}
