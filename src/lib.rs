//! otpd: a credential service that keeps passwords and PINs, checks them, and issues short-lived
//! one-time passwords, speaking the PACE Cloud User API 2022-1.
//!
//! Layers point one way: `http -> service -> store -> domain`, and `http -> identity` (who is
//! calling). `app` assembles them; docs/architecture.md draws the picture.

pub mod app;
pub mod clock;
pub mod config;
pub mod dev;
pub mod domain;
pub mod http;
pub mod identity;
pub mod mail;
pub mod metrics;
pub mod operator;
pub mod request_span;
pub mod server;
pub mod service;
pub mod sms;
pub mod store;
pub mod telemetry;
pub mod templates;
pub mod web;
