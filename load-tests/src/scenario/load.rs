//! The load generator: an open loop at a fixed rate over keep-alive
//! connections, recording every request.
//!
//! Requests are started on a fixed schedule (`rate` per second) whatever
//! the answers, so a slow contender faces the same offered load as a fast
//! one and its slowness shows in latency rather than in fewer requests
//! (no coordinated omission). Requests go through hyper's pooled client, which
//! keeps connections alive and opens more while others are busy. At most
//! `max_in_flight` requests are outstanding: a request due while that many
//! are is not sent and is recorded as [`Answer::NotSent`] (an error).
//! Each request gives up after `timeout`. The loop sends at most
//! `rate × duration` requests, then waits for the last answers, so it
//! always ends by itself within `duration + timeout`.

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{Instant, MissedTickBehavior};

/// The header origins name themselves in.
const ORIGIN_HEADER: &str = "x-origin";

/// What to send, where, and for how long.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub target: SocketAddr,
    pub rate: u32,
    pub duration: Duration,
    pub timeout: Duration,
    pub max_in_flight: usize,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A response with this status (its body was read in full).
    Status(u16),
    /// The connection failed or closed before a full response.
    Broken,
    /// No complete response within the timeout.
    TimedOut,
    /// Not sent: too many requests were outstanding.
    NotSent,
}

/// One request as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// When it was due, from the start of the load.
    pub sent_at: Duration,
    /// From sending to the end of the response body (zero when not sent).
    pub latency: Duration,
    pub answer: Answer,
    /// The backend that answered (index into the scenario's backends), from
    /// the `x-origin` response header.
    pub origin: Option<usize>,
}

impl Outcome {
    /// Anything but a complete 2xx or 3xx response.
    pub fn is_error(&self) -> bool {
        !matches!(self.answer, Answer::Status(status) if status < 400)
    }

    /// Whether the request was sent (and so has a latency).
    pub fn was_sent(&self) -> bool {
        self.answer != Answer::NotSent
    }
}

/// Sends the planned load from `start` and returns every outcome, in no
/// particular order. `origin_names` maps `x-origin` values to indices.
pub async fn drive(plan: &LoadPlan, start: Instant, origin_names: &[&str]) -> Vec<Outcome> {
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http::<Empty<Bytes>>();
    let uri: Uri = format!("http://{}/load", plan.target)
        .parse()
        .expect("a socket address makes a valid URI");
    let names: Arc<Vec<String>> = Arc::new(origin_names.iter().map(|n| n.to_string()).collect());
    let in_flight = Arc::new(Semaphore::new(plan.max_in_flight));
    let (record, mut recorded) = mpsc::unbounded_channel();
    let period = Duration::from_secs(1) / plan.rate;
    let total = u64::from(plan.rate) * plan.duration.as_secs();
    let mut schedule = tokio::time::interval_at(start, period);
    schedule.set_missed_tick_behavior(MissedTickBehavior::Burst);
    for sequence in 0..total {
        schedule.tick().await;
        let sent_at = period * u32::try_from(sequence).unwrap_or(u32::MAX);
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            let _ = record.send(Outcome {
                sent_at,
                latency: Duration::ZERO,
                answer: Answer::NotSent,
                origin: None,
            });
            continue;
        };
        let (client, uri, names, record) =
            (client.clone(), uri.clone(), names.clone(), record.clone());
        let timeout = plan.timeout;
        tokio::spawn(async move {
            let began = Instant::now();
            let (answer, origin) = match tokio::time::timeout(timeout, get(&client, uri)).await {
                Ok(Ok((status, origin))) => (Answer::Status(status), origin),
                Ok(Err(())) => (Answer::Broken, None),
                Err(_elapsed) => (Answer::TimedOut, None),
            };
            let origin = origin.and_then(|name| names.iter().position(|n| *n == name));
            drop(permit);
            let _ = record.send(Outcome {
                sent_at,
                latency: began.elapsed(),
                answer,
                origin,
            });
        });
    }
    drop(record);
    let mut outcomes = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    while let Some(outcome) = recorded.recv().await {
        outcomes.push(outcome);
    }
    outcomes
}

type PooledClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

/// One GET: the status and `x-origin` once the body is read, or `Err` when
/// the exchange broke.
async fn get(client: &PooledClient, uri: Uri) -> Result<(u16, Option<String>), ()> {
    let request = Request::get(uri)
        .body(Empty::new())
        .expect("a GET without headers is a valid request");
    let response = client.request(request).await.map_err(|_| ())?;
    let status = response.status().as_u16();
    let origin = response
        .headers()
        .get(ORIGIN_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    response.into_body().collect().await.map_err(|_| ())?;
    Ok((status, origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(answer: Answer) -> Outcome {
        Outcome {
            sent_at: Duration::ZERO,
            latency: Duration::ZERO,
            answer,
            origin: None,
        }
    }

    #[test]
    fn only_complete_2xx_and_3xx_answers_are_successes() {
        assert!(!outcome(Answer::Status(200)).is_error());
        assert!(!outcome(Answer::Status(304)).is_error());
        for answer in [
            Answer::Status(404),
            Answer::Status(502),
            Answer::Broken,
            Answer::TimedOut,
            Answer::NotSent,
        ] {
            assert!(outcome(answer).is_error(), "{answer:?}");
        }
        assert!(!outcome(Answer::NotSent).was_sent());
    }
}
