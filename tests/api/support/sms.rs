//! A real SMS gateway stand-in: an HTTP server on loopback that records every request (method,
//! headers, body) and answers with the status the test chose, optionally after a delay. Tests read
//! the code from what it received, as a phone would.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ReceivedSms {
    pub method: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl ReceivedSms {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The 6-digit code in the text (the built-in template puts it first: "123456 is your …"),
    /// in a JSON or a form body.
    pub fn code(&self) -> String {
        let text = self.body.replace('+', " ");
        let at = text
            .find(" is your")
            .unwrap_or_else(|| panic!("no code in {}", self.body));
        let digits: String = text[..at]
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect();
        let code: String = digits.chars().rev().collect();
        assert_eq!(code.len(), 6, "{}", self.body);
        code
    }
}

#[derive(Clone)]
struct Gateway {
    received: Arc<Mutex<Vec<ReceivedSms>>>,
    answer: Arc<Mutex<(StatusCode, Duration)>>,
}

pub struct SmsGateway {
    pub url: String,
    state: Gateway,
}

async fn receive(
    State(g): State<Gateway>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (status, delay) = *g.answer.lock().unwrap();
    g.received.lock().unwrap().push(ReceivedSms {
        method: method.to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    tokio::time::sleep(delay).await;
    status
}

impl SmsGateway {
    /// Answers 201 (as Twilio does) at once until told otherwise.
    pub async fn start() -> Self {
        let state = Gateway {
            received: Arc::default(),
            answer: Arc::new(Mutex::new((StatusCode::CREATED, Duration::ZERO))),
        };
        let app = Router::new().fallback(receive).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}/messages"),
            state,
        }
    }

    pub fn answer(&self, status: u16, delay: Duration) {
        *self.state.answer.lock().unwrap() = (StatusCode::from_u16(status).unwrap(), delay);
    }

    pub fn received(&self) -> Vec<ReceivedSms> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn last(&self) -> ReceivedSms {
        self.received().pop().expect("the gateway received an SMS")
    }
}
