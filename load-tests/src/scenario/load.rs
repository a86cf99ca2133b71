//! The load generator: an open loop at a fixed rate, or a closed loop of
//! clients, over keep-alive connections, recording every request.
//!
//! # Open loop
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
//!
//! With a read-your-writes plan, request `n` belongs to user
//! `n % users`: every `write_every`-th request of a user is a `POST`, the
//! others are `GET`s, and each carries the cookies the user's last
//! successful write got back (as a browser would). Each outcome records
//! whether it was a write, and how long after its user's last write a read
//! was sent.
//!
//! # Closed loop
//!
//! `clients` clients each send a `GET /work`, wait for its answer (or its
//! timeout), and send the next one at once, until the scenario's duration
//! is over: the offered load follows the answers, as with real users or
//! a connection-pooled caller, so a slow contender serves fewer requests.
//! They share one pooled client, so each finds a kept-alive connection.
//! After a broken exchange a client pauses [`BROKEN_PAUSE`] so that a
//! proxy that refuses connections is not spun on; each sends at most
//! [`MAX_CLOSED_LOOP_RATE`] requests per second of the duration. The loop
//! ends by itself within `duration + timeout`. Outcomes are the same as the
//! open loop's (`sent_at` is when the request was sent), so reports and
//! analyses treat both alike. The read-your-writes workload is open-loop
//! only.

use super::plan::{Load, ReadYourWritesPlan};
use bytes::Bytes;
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

/// The header origins name themselves in.
const ORIGIN_HEADER: &str = "x-origin";

/// How long a closed-loop client waits after a broken exchange.
pub const BROKEN_PAUSE: Duration = Duration::from_millis(10);

/// The most requests a closed-loop client sends per second of the run.
pub const MAX_CLOSED_LOOP_RATE: u64 = 10_000;

/// What to send, where, and for how long.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub target: SocketAddr,
    pub load: Load,
    pub duration: Duration,
    pub timeout: Duration,
    pub max_in_flight: usize,
    /// Users who write and read back (`None`: anonymous `GET /work`).
    pub read_your_writes: Option<ReadYourWritesPlan>,
}

/// What a request was to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// A read by an anonymous client, or by a user who has not written yet.
    Read,
    /// A write (`POST`).
    Write,
    /// A read sent this long after its user's last successful write returned.
    ReadAfterWrite(Duration),
}

/// One simulated user of the read-your-writes workload.
#[derive(Debug, Default)]
struct User {
    requests: usize,
    /// The `Cookie` value its last successful write's response set.
    cookies: Option<HeaderValue>,
    last_write_done: Option<Instant>,
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
    pub traffic: Traffic,
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
    let uri: Uri = format!("http://{}/work", plan.target)
        .parse()
        .expect("a socket address makes a valid URI");
    let names: Arc<Vec<String>> = Arc::new(origin_names.iter().map(|n| n.to_string()).collect());
    match plan.load {
        Load::Open { rate } => open_loop(plan, rate, start, client, uri, names).await,
        Load::Closed { clients } => closed_loop(plan, clients, start, client, uri, names).await,
    }
}

/// `clients` clients, each sending its next request when the last one is
/// answered, from `start` for the plan's duration.
async fn closed_loop(
    plan: &LoadPlan,
    clients: u32,
    start: Instant,
    client: PooledClient,
    uri: Uri,
    names: Arc<Vec<String>>,
) -> Vec<Outcome> {
    let end = start + plan.duration;
    let most = MAX_CLOSED_LOOP_RATE * plan.duration.as_secs().max(1);
    let mut running = JoinSet::new();
    for _ in 0..clients {
        let (client, uri, names, timeout) =
            (client.clone(), uri.clone(), names.clone(), plan.timeout);
        running.spawn(async move {
            tokio::time::sleep_until(start).await;
            let mut outcomes = Vec::new();
            while (outcomes.len() as u64) < most {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                let exchange = send(&client, Method::GET, uri.clone(), None);
                let answer = match tokio::time::timeout(timeout, exchange).await {
                    Ok(Ok(answered)) => (Answer::Status(answered.status), answered.origin),
                    Ok(Err(())) => (Answer::Broken, None),
                    Err(_elapsed) => (Answer::TimedOut, None),
                };
                outcomes.push(Outcome {
                    sent_at: began - start,
                    latency: began.elapsed(),
                    answer: answer.0,
                    origin: answer
                        .1
                        .and_then(|name| names.iter().position(|n| *n == name)),
                    traffic: Traffic::Read,
                });
                if answer.0 == Answer::Broken {
                    tokio::time::sleep(BROKEN_PAUSE).await;
                }
            }
            outcomes
        });
    }
    let mut outcomes = Vec::new();
    while let Some(finished) = running.join_next().await {
        outcomes.extend(finished.unwrap_or_default());
    }
    outcomes
}

/// Requests started `rate` times a second from `start`, whatever the
/// answers.
async fn open_loop(
    plan: &LoadPlan,
    rate: u32,
    start: Instant,
    client: PooledClient,
    uri: Uri,
    names: Arc<Vec<String>>,
) -> Vec<Outcome> {
    let in_flight = Arc::new(Semaphore::new(plan.max_in_flight));
    let users: Arc<Vec<Mutex<User>>> = Arc::new(
        (0..plan.read_your_writes.map_or(0, |p| p.users))
            .map(|_| Mutex::default())
            .collect(),
    );
    let (record, mut recorded) = mpsc::unbounded_channel();
    let period = Duration::from_secs(1) / rate;
    let total = u64::from(rate) * plan.duration.as_secs();
    let mut schedule = tokio::time::interval_at(start, period);
    schedule.set_missed_tick_behavior(MissedTickBehavior::Burst);
    for sequence in 0..total {
        schedule.tick().await;
        let sent_at = period * u32::try_from(sequence).unwrap_or(u32::MAX);
        let user = plan
            .read_your_writes
            .map(|p| (p, (sequence % p.users as u64) as usize));
        let (traffic, cookies) = match user {
            Some((p, index)) => next_request(&users[index], index, p.write_every),
            None => (Traffic::Read, None),
        };
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            let _ = record.send(Outcome {
                sent_at,
                latency: Duration::ZERO,
                answer: Answer::NotSent,
                origin: None,
                traffic,
            });
            continue;
        };
        let (client, uri, names, record, users) = (
            client.clone(),
            uri.clone(),
            names.clone(),
            record.clone(),
            users.clone(),
        );
        let timeout = plan.timeout;
        tokio::spawn(async move {
            let began = Instant::now();
            let method = match traffic {
                Traffic::Write => Method::POST,
                _ => Method::GET,
            };
            let exchange = send(&client, method, uri, cookies);
            let (answer, origin, set_cookies) = match tokio::time::timeout(timeout, exchange).await
            {
                Ok(Ok(answered)) => (
                    Answer::Status(answered.status),
                    answered.origin,
                    answered.cookies,
                ),
                Ok(Err(())) => (Answer::Broken, None, None),
                Err(_elapsed) => (Answer::TimedOut, None, None),
            };
            if let (Traffic::Write, Answer::Status(status), Some((_, index))) =
                (traffic, answer, user)
            {
                if status < 400 {
                    let mut user = users[index]
                        .lock()
                        .expect("a user's lock is never poisoned");
                    user.last_write_done = Some(Instant::now());
                    user.cookies = set_cookies;
                }
            }
            let origin = origin.and_then(|name| names.iter().position(|n| *n == name));
            drop(permit);
            let _ = record.send(Outcome {
                sent_at,
                latency: began.elapsed(),
                answer,
                origin,
                traffic,
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

/// What user `index`'s next request is, and the cookies it carries.
fn next_request(
    user: &Mutex<User>,
    index: usize,
    write_every: usize,
) -> (Traffic, Option<HeaderValue>) {
    let mut user = user.lock().expect("a user's lock is never poisoned");
    let turn = user.requests;
    user.requests += 1;
    // Users are offset so that their writes spread over time.
    let traffic = if (turn + index).is_multiple_of(write_every.max(1)) {
        Traffic::Write
    } else {
        match user.last_write_done {
            Some(done) => Traffic::ReadAfterWrite(done.elapsed()),
            None => Traffic::Read,
        }
    };
    (traffic, user.cookies.clone())
}

type PooledClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

/// A complete response, as far as the load generator cares.
struct Answered {
    status: u16,
    origin: Option<String>,
    /// The cookies it set, as a `Cookie` header value (`a=1; b=2`).
    cookies: Option<HeaderValue>,
}

/// One request without a body; `Err` when the exchange broke.
async fn send(
    client: &PooledClient,
    method: Method,
    uri: Uri,
    cookies: Option<HeaderValue>,
) -> Result<Answered, ()> {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(cookies) = cookies {
        request = request.header(COOKIE, cookies);
    }
    let request = request
        .body(Empty::new())
        .expect("a method, a URI and a cookie make a valid request");
    let response = client.request(request).await.map_err(|_| ())?;
    let status = response.status().as_u16();
    let headers = response.headers();
    let origin = headers
        .get(ORIGIN_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let pairs: Vec<&str> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok()?.split(';').next())
        .map(str::trim)
        .collect();
    let cookies = (!pairs.is_empty())
        .then(|| HeaderValue::from_str(&pairs.join("; ")).ok())
        .flatten();
    response.into_body().collect().await.map_err(|_| ())?;
    Ok(Answered {
        status,
        origin,
        cookies,
    })
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
            traffic: Traffic::Read,
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

    /// The most intervals `[sent_at, sent_at + latency)` open at once.
    fn most_at_once(outcomes: &[Outcome]) -> usize {
        let mut edges: Vec<(Duration, i32)> = outcomes
            .iter()
            .flat_map(|o| [(o.sent_at, 1), (o.sent_at + o.latency, -1)])
            .collect();
        edges.sort_by_key(|&(at, step)| (at, step));
        let (mut open, mut most) = (0i32, 0i32);
        for (_, step) in edges {
            open += step;
            most = most.max(open);
        }
        most as usize
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_loop_keeps_each_client_to_one_request_at_a_time() {
        use crate::behaviour::{BehaviourUpdate, Limit};
        use crate::origin::{spawn, OriginConfig};
        let origin = spawn("127.0.0.1:0".parse().unwrap(), OriginConfig::new("o"))
            .await
            .unwrap();
        origin.set_latency(Duration::from_millis(20));
        let two_workers = BehaviourUpdate {
            workers: Some(Limit::At(2)),
            ..BehaviourUpdate::default()
        };
        origin.update(two_workers).await.unwrap();
        let plan = LoadPlan {
            target: origin.addr,
            load: Load::Closed { clients: 4 },
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            max_in_flight: 1,
            read_your_writes: None,
        };
        let outcomes = drive(&plan, Instant::now(), &["o"]).await;
        assert!(outcomes.len() >= 8, "{} requests", outcomes.len());
        // Two workers of 20 ms serve at most 100 requests a second.
        assert!(outcomes.len() <= 110, "{} requests", outcomes.len());
        assert!(outcomes
            .iter()
            .all(|o| o.answer == Answer::Status(200) && o.origin == Some(0)));
        assert!(outcomes.iter().all(|o| o.sent_at < plan.duration));
        assert!(most_at_once(&outcomes) <= 4);
        assert_eq!(origin.stats.total(), outcomes.len() as u64);
    }
}
