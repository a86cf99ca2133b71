//! What a run shows: client latency and errors for the whole run and for
//! the phase after the change, the traffic share of each backend per
//! second, how long the affected backend's share took to settle, and the
//! shares Ballast published.
//!
//! "After the change" is the first phase of the scenario: from its first
//! mark to the next mark or the end (for the failure scenario, the time the
//! backend is down).

use super::consistency::{self, Consistency};
use super::contender::Contender;
use super::plan::Scenario;
use super::published::Sample;
use super::runner::Run;
use super::stats::Summary;
use super::timeline::{self, Second, SETTLE_SECONDS};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Analysis {
    pub contender: Contender,
    pub whole: Option<Summary>,
    pub after: Option<Summary>,
    pub seconds: Vec<Second>,
    /// Convergence time of the focus backend after each mark, in seconds.
    pub convergence: Vec<Option<usize>>,
    /// The focus backend's mean share over the last 5 s of each mark's
    /// phase: what it converged to (or failed to).
    pub settled_shares: Vec<Option<f64>>,
    /// The focus backend's mean share over the 5 s before the first mark
    /// (`None` when the mark is the start).
    pub focus_before: Option<f64>,
    /// Its mean share over the last 5 s of the first phase.
    pub focus_after: Option<f64>,
    /// Standard deviation of its 1-s share over the first phase.
    pub focus_spread: Option<f64>,
    /// Standard deviation of its 1-s share in the first phase's steady
    /// state: from its convergence to the phase's end, or over the phase's
    /// last 5 s when it did not converge.
    pub focus_steady_spread: Option<f64>,
    /// Ballast's published share of it, averaged over the last 5 s of the
    /// first phase.
    pub published_after: Option<f64>,
    /// Published shares averaged per second: `[second][backend]`.
    pub published: Vec<Vec<Option<f64>>>,
    /// Where writes and the reads after them went (read-your-writes only).
    pub consistency: Option<Consistency>,
}

pub fn analyse(scenario: &Scenario, run: &Run) -> Analysis {
    let seconds = timeline::seconds(&run.outcomes, scenario.backends.len(), scenario.duration);
    let focus = timeline::shares(&seconds, scenario.focus);
    let (after_start, after_end) = scenario.phase(0);
    let first_phase = whole_seconds(after_start)..whole_seconds(after_end);
    let last_stretch = first_phase.end.saturating_sub(SETTLE_SECONDS)..first_phase.end;
    let before = whole_seconds(after_start);
    let published = published_per_second(&run.published, seconds.len(), scenario.backends.len());
    let published_focus: Vec<Option<f64>> = published.iter().map(|s| s[scenario.focus]).collect();
    let phases: Vec<_> = (0..scenario.marks.len())
        .map(|mark| {
            let (start, end) = scenario.phase(mark);
            whole_seconds(start)..whole_seconds(end)
        })
        .collect();
    let convergence: Vec<Option<usize>> = phases
        .iter()
        .map(|phase| timeline::convergence(&focus, phase.clone()))
        .collect();
    let steady = match convergence[0] {
        Some(after) => first_phase.start + after..first_phase.end,
        None => last_stretch.clone(),
    };
    Analysis {
        contender: run.contender,
        whole: Summary::of(&run.outcomes),
        after: Summary::of(
            run.outcomes
                .iter()
                .filter(|o| o.sent_at >= after_start && o.sent_at < after_end),
        ),
        convergence,
        settled_shares: phases
            .iter()
            .map(|phase| {
                timeline::mean(&focus, phase.end.saturating_sub(SETTLE_SECONDS)..phase.end)
            })
            .collect(),
        focus_before: (before > 0)
            .then(|| timeline::mean(&focus, before.saturating_sub(SETTLE_SECONDS)..before))
            .flatten(),
        focus_after: timeline::mean(&focus, last_stretch.clone()),
        focus_spread: timeline::spread(&focus, first_phase),
        focus_steady_spread: timeline::spread(&focus, steady),
        published_after: timeline::mean(&published_focus, last_stretch),
        published,
        consistency: consistency::measure(scenario, &run.outcomes),
        seconds,
    }
}

fn whole_seconds(at: Duration) -> usize {
    at.as_secs() as usize
}

/// The mean published share of each backend in each second.
fn published_per_second(
    samples: &[Sample],
    seconds: usize,
    backends: usize,
) -> Vec<Vec<Option<f64>>> {
    (0..seconds)
        .map(|second| {
            let within: Vec<&Sample> = samples
                .iter()
                .filter(|s| whole_seconds(s.at) == second)
                .collect();
            (0..backends)
                .map(|backend| {
                    let values: Vec<f64> =
                        within.iter().filter_map(|s| s.shares[backend]).collect();
                    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::contender::BallastMode;
    use crate::scenario::load::{Answer, Outcome, Traffic};
    use crate::scenario::plan::{catalogue, Pace};

    /// 10 requests a second; backend 1 gets half of them before the change
    /// at 6 s and a tenth from 8 s on, and answers in 80 ms after it.
    fn synthetic_run(scenario: &Scenario) -> Run {
        let mut outcomes = Vec::new();
        for second in 0..scenario.duration.as_secs() {
            for slot in 0..10u64 {
                let on_b = match second {
                    0..=5 => slot % 2 == 1,
                    6..=7 => slot % 4 == 1,
                    _ => slot == 1,
                };
                let latency_ms = if on_b && second >= 6 { 80 } else { 10 };
                outcomes.push(Outcome {
                    sent_at: Duration::from_millis(second * 1000 + slot * 100),
                    latency: Duration::from_millis(latency_ms),
                    answer: Answer::Status(200),
                    origin: Some(usize::from(on_b)),
                    traffic: Traffic::Read,
                });
            }
        }
        let published = (0..scenario.duration.as_secs() * 4)
            .map(|quarter| Sample {
                at: Duration::from_millis(quarter * 250),
                shares: vec![Some(0.9), Some(0.1)],
            })
            .collect();
        Run {
            contender: Contender::Ballast(BallastMode::Latency),
            outcomes,
            published,
        }
    }

    #[test]
    fn a_spike_run_is_summarised_before_and_after_the_change() {
        let spike = catalogue(Pace::Quick)
            .into_iter()
            .find(|s| s.key == "spike")
            .unwrap();
        assert_eq!(spike.phase(0), (Duration::from_secs(6), spike.duration));
        let analysis = analyse(&spike, &synthetic_run(&spike));
        assert_eq!(analysis.seconds.len(), 18);
        assert_eq!(analysis.whole.unwrap().requests, 180);
        let after = analysis.after.unwrap();
        assert_eq!(after.requests, 120);
        assert_eq!(after.p99, 80.0);
        assert_eq!(analysis.focus_before, Some(0.5));
        assert!((analysis.focus_after.unwrap() - 0.1).abs() < 1e-12);
        // 6 s: 0.3 is out of the band around 0.1; from 8 s on it is in.
        assert_eq!(analysis.convergence, [Some(2)]);
        // Converged at 8 s: the tenth share holds from there on.
        assert!(analysis.focus_steady_spread.unwrap() < 1e-12);
        assert!(analysis.focus_spread.unwrap() > 0.05);
        assert_eq!(analysis.settled_shares, [analysis.focus_after]);
        assert_eq!(analysis.published_after, Some(0.1));
        assert_eq!(analysis.published[0], [Some(0.9), Some(0.1)]);
    }
}
