//! Counting open client connections, in total and per client IP address,
//! and refusing one over a limit. A [`Slot`] stands for one admitted
//! connection and gives its place back when dropped.

use crate::telemetry::metrics::Metrics;
use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Why a connection was refused: the label of
/// `ballast_client_connections_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    MaxClientConnections,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::MaxClientConnections => "max_client_connections",
        }
    }
}

/// The open client connections of the process.
pub struct ConnectionCounts {
    max_total: usize,
    /// 0: no limit per client.
    max_per_client: usize,
    total: AtomicUsize,
    /// Only kept with a per-client limit; an address leaves when its last
    /// connection closes.
    per_client: DashMap<IpAddr, usize, foldhash::fast::RandomState>,
    metrics: Arc<Metrics>,
}

impl ConnectionCounts {
    pub fn new(max_total: usize, max_per_client: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            max_total,
            max_per_client,
            total: AtomicUsize::new(0),
            per_client: DashMap::default(),
            metrics,
        }
    }

    /// Admit a connection from `client`, or say which limit it is over (and
    /// count the refusal).
    pub fn admit(self: &Arc<Self>, client: Option<IpAddr>) -> Result<Slot, Refusal> {
        let admitted = self.take_place(client);
        match admitted {
            Ok(_) => self.metrics.client_connections.inc(),
            Err(refusal) => self
                .metrics
                .client_connections_refused
                .with_label_values(&[refusal.label()])
                .inc(),
        }
        admitted
    }

    fn take_place(self: &Arc<Self>, client: Option<IpAddr>) -> Result<Slot, Refusal> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::MaxConnections);
        }
        let client = client.filter(|_| self.max_per_client > 0);
        if let Some(ip) = client {
            let mut open = self.per_client.entry(ip).or_insert(0);
            if *open >= self.max_per_client {
                drop(open);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::MaxClientConnections);
            }
            *open += 1;
        }
        Ok(Slot {
            counts: self.clone(),
            client,
        })
    }

    /// Client connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

/// One admitted connection's place.
pub struct Slot {
    counts: Arc<ConnectionCounts>,
    client: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.client {
            if let Some(mut open) = self.counts.per_client.get_mut(&ip) {
                *open = open.saturating_sub(1);
            }
            self.counts.per_client.remove_if(&ip, |_, open| *open == 0);
        }
        self.counts.total.fetch_sub(1, Ordering::AcqRel);
        self.counts.metrics.client_connections.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn a_client_over_its_limit_is_refused_and_others_are_not() {
        let counts = Arc::new(ConnectionCounts::new(10, 2, Arc::new(Metrics::new())));
        let a1 = counts.admit(ip(1)).unwrap();
        let _a2 = counts.admit(ip(1)).unwrap();
        assert_eq!(
            counts.admit(ip(1)).err(),
            Some(Refusal::MaxClientConnections)
        );
        let _b = counts.admit(ip(2)).unwrap();
        assert_eq!(counts.open(), 3);
        drop(a1);
        let _a3 = counts.admit(ip(1)).unwrap();
        assert_eq!(counts.open(), 3);
    }

    #[test]
    fn the_total_limit_holds_and_places_come_back() {
        let counts = Arc::new(ConnectionCounts::new(2, 0, Arc::new(Metrics::new())));
        let first = counts.admit(ip(1)).unwrap();
        let _second = counts.admit(ip(1)).unwrap();
        assert_eq!(counts.admit(ip(2)).err(), Some(Refusal::MaxConnections));
        drop(first);
        assert!(counts.admit(ip(2)).is_ok());
        assert!(
            counts.per_client.is_empty(),
            "no per-client map without a per-client limit"
        );
    }

    #[test]
    fn an_address_leaves_the_map_with_its_last_connection() {
        let counts = Arc::new(ConnectionCounts::new(10, 1, Arc::new(Metrics::new())));
        let only = counts.admit(ip(1)).unwrap();
        assert!(counts.admit(ip(1)).is_err());
        drop(only);
        assert!(counts.per_client.is_empty());
        assert_eq!(counts.open(), 0);
    }
}
