//! An authoritative DNS server on an ephemeral loopback UDP port, whose
//! records a test changes while Ballast resolves them: A, AAAA and SRV
//! records, NXDOMAIN for unknown names, and modes that answer NXDOMAIN for
//! everything or do not answer at all. It counts the queries it receives.

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// From its records (NXDOMAIN for a name it does not know).
    Records,
    /// NXDOMAIN for every name.
    NxDomain,
    /// No answer at all (the queries are still counted).
    Silent,
}

struct Zone {
    hosts: HashMap<String, Vec<IpAddr>>,
    srv: HashMap<String, Vec<(u16, String)>>,
    ttl: u32,
    mode: Mode,
    queries: HashMap<String, usize>,
}

/// The running server; it stops when dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    task: tokio::task::JoinHandle<()>,
}

/// `name` lower-cased, without its final dot.
fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsServer {
    /// A server on 127.0.0.1 whose records carry `ttl` seconds.
    pub async fn start(ttl: u32) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let zone = Arc::new(Mutex::new(Zone {
            hosts: HashMap::new(),
            srv: HashMap::new(),
            ttl,
            mode: Mode::Records,
            queries: HashMap::new(),
        }));
        let serving = zone.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            loop {
                let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let Ok(request) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                let answer = answer(&serving, &request);
                if let Some(bytes) = answer {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        Self { addr, zone, task }
    }

    fn zone(&self) -> std::sync::MutexGuard<'_, Zone> {
        self.zone.lock().unwrap()
    }

    /// Make `name`'s A/AAAA records `ips` (an empty list: the name exists
    /// with no address).
    pub fn set_host(&self, name: &str, ips: &[IpAddr]) {
        self.zone().hosts.insert(key(name), ips.to_vec());
    }

    /// Make `name`'s SRV records `(port, target)`.
    pub fn set_srv(&self, name: &str, records: &[(u16, &str)]) {
        let records = records.iter().map(|(p, t)| (*p, t.to_string())).collect();
        self.zone().srv.insert(key(name), records);
    }

    pub fn set_mode(&self, mode: Mode) {
        self.zone().mode = mode;
    }

    /// Queries received for `name`, of any type.
    pub fn queries(&self, name: &str) -> usize {
        self.zone().queries.get(&key(name)).copied().unwrap_or(0)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The response to `request`, or `None` to stay silent.
fn answer(zone: &Mutex<Zone>, request: &Message) -> Option<Vec<u8>> {
    let mut zone = zone.lock().unwrap();
    let query = request.queries().first()?.clone();
    let name = key(&query.name().to_ascii());
    *zone.queries.entry(name.clone()).or_default() += 1;
    if zone.mode == Mode::Silent {
        return None;
    }
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_authoritative(true)
        .add_query(query.clone());
    let owner = query.name().clone();
    let ttl = zone.ttl;
    let known = zone.hosts.contains_key(&name) || zone.srv.contains_key(&name);
    if zone.mode == Mode::NxDomain || !known {
        response.set_response_code(ResponseCode::NXDomain);
        return response.to_vec().ok();
    }
    let records: Vec<Record> = match query.query_type() {
        RecordType::A => zone
            .hosts
            .get(&name)
            .into_iter()
            .flatten()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(Record::from_rdata(owner.clone(), ttl, RData::A(A(*v4)))),
                IpAddr::V6(_) => None,
            })
            .collect(),
        RecordType::AAAA => zone
            .hosts
            .get(&name)
            .into_iter()
            .flatten()
            .filter_map(|ip| match ip {
                IpAddr::V6(v6) => Some(Record::from_rdata(
                    owner.clone(),
                    ttl,
                    RData::AAAA(AAAA(*v6)),
                )),
                IpAddr::V4(_) => None,
            })
            .collect(),
        RecordType::SRV => zone
            .srv
            .get(&name)
            .into_iter()
            .flatten()
            .map(|(port, target)| {
                let target = Name::from_str(&format!("{}.", key(target))).unwrap();
                Record::from_rdata(
                    owner.clone(),
                    ttl,
                    RData::SRV(SRV::new(10, 10, *port, target)),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    response.add_answers(records);
    response.to_vec().ok()
}
