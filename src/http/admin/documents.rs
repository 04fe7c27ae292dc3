//! The JSON:API documents the admin API answers with (`application/vnd.api+json`), built from the
//! services' answers. Times are RFC 3339 in UTC; nothing here can hold a secret.

use crate::clock::rfc3339_millis;
use crate::domain::{Admission, AttemptState, GuardedFactor};
use crate::service::PhoneStatus;
use crate::service::admin::AuditPage;
use crate::service::attempts::UserStatus;
use serde::Serialize;
use utoipa::ToSchema;

/// `GET /admin/v1/users/{sub}`.
#[derive(Serialize, ToSchema)]
pub struct AdminUserDocument {
    data: AdminUserResource,
}

#[derive(Serialize, ToSchema)]
pub struct AdminUserResource {
    /// Always `adminUser`.
    #[serde(rename = "type")]
    #[schema(example = "adminUser")]
    kind: &'static str,
    /// The user's `sub`.
    id: String,
    attributes: AdminUserAttributes,
}

#[derive(Serialize, ToSchema)]
pub struct AdminUserAttributes {
    password: KnowledgeFactorState,
    pin: KnowledgeFactorState,
    /// OTP and device-TOTP redemption, which share one attempt counter.
    otp: AttemptView,
    /// The user's device TOTPs, oldest first.
    devices: Vec<DeviceView>,
    /// The phone number (never the number itself) and its code's attempt counter.
    phone: PhoneView,
}

#[derive(Serialize, ToSchema)]
pub struct PhoneView {
    /// `verified` (a verified number is set), `pending` (a number awaits its code) or `none`.
    #[schema(example = "verified")]
    status: &'static str,
    #[serde(flatten)]
    attempts: AttemptView,
}

#[derive(Serialize, ToSchema)]
pub struct KnowledgeFactorState {
    /// Whether the factor is set.
    set: bool,
    #[serde(flatten)]
    attempts: AttemptView,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    /// Consecutive failures.
    failures: u32,
    /// `open`, `locked` (until `lockedUntil`) or `disabled` (until set anew or unlocked).
    #[schema(example = "open")]
    state: &'static str,
    /// When a lock ends (RFC 3339, UTC); null unless `state` is `locked`.
    locked_until: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    /// The device id (a UUID) the device chose.
    id: String,
    /// RFC 3339, UTC.
    created_at: String,
}

fn attempt_view(state: &AttemptState, now: i64) -> AttemptView {
    let (label, locked_until) = match state.admission(now) {
        Admission::Open => ("open", None),
        Admission::Disabled => ("disabled", None),
        Admission::Locked { .. } => ("locked", Some(rfc3339_millis(state.locked_until))),
    };
    AttemptView {
        failures: state.failures,
        state: label,
        locked_until,
    }
}

impl From<UserStatus> for AdminUserDocument {
    fn from(status: UserStatus) -> Self {
        let view = |factor: GuardedFactor| {
            let state = status
                .attempts
                .iter()
                .find(|(f, _)| *f == factor)
                .map(|(_, s)| *s)
                .unwrap_or_default();
            attempt_view(&state, status.now)
        };
        Self {
            data: AdminUserResource {
                kind: "adminUser",
                id: status.sub.as_str().to_owned(),
                attributes: AdminUserAttributes {
                    password: KnowledgeFactorState {
                        set: status.password_set,
                        attempts: view(GuardedFactor::Password),
                    },
                    pin: KnowledgeFactorState {
                        set: status.pin_set,
                        attempts: view(GuardedFactor::Pin),
                    },
                    otp: view(GuardedFactor::Otp),
                    phone: PhoneView {
                        status: match status.phone {
                            PhoneStatus::Verified => "verified",
                            PhoneStatus::Pending => "pending",
                            PhoneStatus::None => "none",
                        },
                        attempts: view(GuardedFactor::Phone),
                    },
                    devices: status
                        .devices
                        .iter()
                        .map(|d| DeviceView {
                            id: d.device_id.clone(),
                            created_at: rfc3339_millis(d.created_at),
                        })
                        .collect(),
                },
            },
        }
    }
}

/// `GET /admin/v1/users/{sub}/audit`: one page, oldest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPageDocument {
    data: Vec<AuditEventResource>,
    links: AuditPageLinks,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventResource {
    /// Always `auditEvent`.
    #[serde(rename = "type")]
    #[schema(example = "auditEvent")]
    kind: &'static str,
    /// The event's id, ascending in the order events were written; also a cursor (`page[after]`).
    #[schema(example = "17")]
    id: String,
    attributes: AuditEventAttributes,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventAttributes {
    /// RFC 3339, UTC, with milliseconds when not zero.
    at: String,
    /// e.g. `otp.issued`, `pin.locked`, `user.deleted`, `admin.user-shown`.
    #[schema(example = "otp.issued")]
    event: String,
    /// `key=value` pairs: never a secret.
    #[schema(example = "factor=pin")]
    detail: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPageLinks {
    /// This page.
    #[serde(rename = "self")]
    this: String,
    /// The following page; null on the last page (for now: new events get ids after the last).
    next: Option<String>,
}

impl AuditPageDocument {
    /// `path` is the page's path without query; `size` the page size asked for.
    pub fn new(page: AuditPage, path: &str, after: Option<i64>, size: u32) -> Self {
        let link = |after: Option<i64>| match after {
            Some(after) => format!("{path}?page%5Bafter%5D={after}&page%5Bsize%5D={size}"),
            None => format!("{path}?page%5Bsize%5D={size}"),
        };
        Self {
            links: AuditPageLinks {
                this: link(after),
                next: page.next.map(|n| link(Some(n))),
            },
            data: page
                .events
                .into_iter()
                .map(|e| AuditEventResource {
                    kind: "auditEvent",
                    id: e.id.to_string(),
                    attributes: AuditEventAttributes {
                        at: rfc3339_millis(e.at),
                        event: e.event,
                        detail: e.detail,
                    },
                })
                .collect(),
        }
    }
}
