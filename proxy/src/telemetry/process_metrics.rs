//! Metrics of the process rather than of traffic: `ballast_build_info`, the
//! standard `process_*` series (CPU seconds, resident memory, open file
//! descriptors and their limit, threads, start time; Linux).

use prometheus::core::Collector;
use prometheus::{IntGaugeVec, Opts, Registry};

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
    let collectors: [Box<dyn Collector>; 2] = [
        Box::new(build_info),
        Box::new(prometheus::process_collector::ProcessCollector::for_self()),
    ];
    for collector in collectors {
        registry.register(collector).expect("unique metric");
    }
    registry
}
