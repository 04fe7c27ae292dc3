//! Readers of import files, streaming: JSON Lines one line at a time, a Keycloak export one user
//! at a time (its `users` array is never held whole). Each runs on a blocking thread and hands
//! entries to the import over a bounded channel, so memory stays flat whatever the file size.

use crate::service::import::{ImportEntry, ImportItem, ImportReporter, ImportSummary, SourceHash};
use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Longest JSON line accepted; a longer one is refused without being held in memory.
const MAX_LINE: usize = 64 * 1024;
/// Entries read ahead of the database writes.
const CHANNEL: usize = 2048;

type Reader = Box<dyn Read + Send>;
type Started = (mpsc::Receiver<ImportItem>, JoinHandle<anyhow::Result<()>>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubFrom {
    Id,
    Username,
    Email,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    sub: String,
    password_hash: Option<String>,
    pin_hash: Option<String>,
}

/// `{"sub", "password_hash"?, "pin_hash"?}` per line; blank lines are skipped.
pub fn json_lines(input: Reader) -> Started {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let task = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::with_capacity(64 * 1024, input);
        let mut buf = Vec::with_capacity(1024);
        let mut at = 0u64;
        loop {
            buf.clear();
            at += 1;
            let n = (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            let item = if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') {
                skip_rest_of_line(&mut reader)?;
                ImportItem::Unreadable {
                    at,
                    reason: format!("line longer than {MAX_LINE} bytes"),
                }
            } else if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            } else {
                match serde_json::from_slice::<Line>(&buf) {
                    Ok(line) => ImportItem::Entry(ImportEntry {
                        at,
                        sub: line.sub,
                        password: line.password_hash.map(SourceHash::Phc),
                        pin: line.pin_hash.map(SourceHash::Phc),
                    }),
                    Err(e) => ImportItem::Unreadable {
                        at,
                        reason: json_problem(&e),
                    },
                }
            };
            if tx.blocking_send(item).is_err() {
                return Ok(());
            }
        }
    });
    (rx, task)
}

fn skip_rest_of_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    let mut sink = Vec::with_capacity(MAX_LINE);
    loop {
        sink.clear();
        let n = reader.take(MAX_LINE as u64).read_until(b'\n', &mut sink)?;
        if n == 0 || sink.last() == Some(&b'\n') {
            return Ok(());
        }
    }
}

/// Serde's own words for a data problem (missing or unknown field names, never a string value:
/// every field is a string, so a type error can only quote a number or boolean).
fn json_problem(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => {
            let text = e.to_string();
            let text = text.split(" at line ").next().unwrap_or(&text).to_owned();
            format!("not a {{\"sub\", \"password_hash\"?, \"pin_hash\"?}} object: {text}")
        }
        _ => "not valid JSON".to_owned(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeycloakUser {
    id: Option<String>,
    username: Option<String>,
    email: Option<String>,
    #[serde(default)]
    credentials: Vec<KeycloakCredential>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeycloakCredential {
    #[serde(rename = "type")]
    kind: Option<String>,
    secret_data: Option<String>,
    credential_data: Option<String>,
    hashed_salted_value: Option<IgnoredAny>,
}

/// A realm export or a users export: an object whose `users` array is streamed (other members
/// are skipped unread), or a bare array of users.
pub fn keycloak(input: Reader, sub_from: SubFrom) -> Started {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let task = tokio::task::spawn_blocking(move || {
        let reader = BufReader::with_capacity(64 * 1024, input);
        let mut de = serde_json::Deserializer::from_reader(reader);
        let mut users = Users {
            tx: &tx,
            sub_from,
            at: 0,
        };
        Export(&mut users)
            .deserialize(&mut de)
            .map_err(|e| anyhow::anyhow!("the Keycloak export is not readable JSON: {e}"))?;
        Ok(())
    });
    (rx, task)
}

struct Users<'a> {
    tx: &'a mpsc::Sender<ImportItem>,
    sub_from: SubFrom,
    at: u64,
}

impl Users<'_> {
    fn item(&self, value: serde_json::Value) -> ImportItem {
        let at = self.at;
        let user: KeycloakUser = match serde_json::from_value(value) {
            Ok(u) => u,
            Err(e) => {
                return ImportItem::Unreadable {
                    at,
                    reason: format!("not a Keycloak user: {e}"),
                };
            }
        };
        let sub = match self.sub_from {
            SubFrom::Id => user.id,
            SubFrom::Username => user.username,
            SubFrom::Email => user.email,
        };
        let Some(sub) = sub else {
            return ImportItem::Unreadable {
                at,
                reason: format!("the user has no {:?} to use as its id", self.sub_from)
                    .to_lowercase(),
            };
        };
        let Some(password) = user
            .credentials
            .into_iter()
            .find(|c| c.kind.as_deref() == Some("password"))
        else {
            return ImportItem::NoCredential { at };
        };
        match (password.secret_data, password.credential_data) {
            (Some(secret_data), Some(credential_data)) => ImportItem::Entry(ImportEntry {
                at,
                sub,
                password: Some(SourceHash::Keycloak {
                    secret_data,
                    credential_data,
                }),
                pin: None,
            }),
            _ if password.hashed_salted_value.is_some() => ImportItem::Unreadable {
                at,
                reason: "credential in the pre-7.0 Keycloak format (hashedSaltedValue): export it from a current Keycloak".into(),
            },
            _ => ImportItem::Unreadable {
                at,
                reason: "password credential without secretData and credentialData".into(),
            },
        }
    }
}

struct Export<'a, 'b>(&'a mut Users<'b>);

impl<'de> DeserializeSeed<'de> for Export<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Export<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "a Keycloak realm or users export (an object with `users`) or an array of users",
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "users" {
                map.next_value_seed(UserList(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        UserList(self.0).visit_seq(seq)
    }
}

struct UserList<'a, 'b>(&'a mut Users<'b>);

impl<'de> DeserializeSeed<'de> for UserList<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for UserList<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of Keycloak users")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // One user at a time as a generic value: a malformed user is reported and skipped
        // instead of ending the whole import.
        while let Some(value) = seq.next_element::<serde_json::Value>()? {
            self.0.at += 1;
            let item = self.0.item(value);
            if self.0.tx.blocking_send(item).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// Refusals and progress on standard error, progress at most every two seconds.
pub struct StderrReporter {
    unit: &'static str,
    last: Instant,
}

impl StderrReporter {
    pub fn new(unit: &'static str) -> Self {
        Self {
            unit,
            last: Instant::now(),
        }
    }
}

impl ImportReporter for StderrReporter {
    fn refused(&mut self, at: u64, sub: Option<&str>, reason: &str) {
        match sub {
            Some(sub) => eprintln!("{} {at} (user {sub}): refused: {reason}", self.unit),
            None => eprintln!("{} {at}: refused: {reason}", self.unit),
        }
    }

    fn progress(&mut self, s: &ImportSummary) {
        if self.last.elapsed() >= Duration::from_secs(2) {
            self.last = Instant::now();
            eprintln!(
                "… {} entries read: {} imported, {} replaced, {} kept, {} refused",
                s.entries,
                s.imported,
                s.replaced,
                s.kept,
                s.refused_total()
            );
        }
    }
}
