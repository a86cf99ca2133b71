//! Metrics of the process rather than of traffic: `ballast_build_info`, the
//! standard `process_*` series (CPU seconds, resident memory, open file
//! descriptors and their limit, threads, start time; Linux), and
//! `ballast_log_lines_dropped_total`.

use crate::telemetry::logging;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGaugeVec, Opts, Registry};

/// A registry of the process metrics, apart from the traffic metrics'
/// (whose registry prefixes every name with `ballast_`), so that the
/// `process_*` series keep their standard names.
pub fn registry() -> Registry {
    let registry = Registry::new();
    let build_info = IntGaugeVec::new(
        Opts::new(
            "ballast_build_info",
            "Always 1; the labels say which build is running",
        ),
        &["version"],
    )
    .expect("valid metric");
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
    let dropped = IntCounter::new(
        "ballast_log_lines_dropped_total",
        "Log lines dropped because the log writer was too far behind",
    )
    .expect("valid metric");
    let collectors: [Box<dyn Collector>; 3] = [
        Box::new(build_info),
        Box::new(DroppedLogLines(dropped)),
        Box::new(prometheus::process_collector::ProcessCollector::for_self()),
    ];
    for collector in collectors {
        registry.register(collector).expect("unique metric");
    }
    registry
}

/// A counter that catches up with the log writer's own count when scraped.
struct DroppedLogLines(IntCounter);

impl Collector for DroppedLogLines {
    fn desc(&self) -> Vec<&Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (now, seen) = (logging::dropped_lines(), self.0.get());
        if now > seen {
            self.0.inc_by(now - seen);
        }
        self.0.collect()
    }
}
