//! Live per-backend statistics for the weight engine: a sliding-window
//! latency distribution ([`LatencyWindow`]), sliding-window success/failure
//! counts ([`OutcomeWindow`]) and a time-decayed latency average with its
//! peak-sensitive variant ([`LatencyEwma`]).
//!
//! Requests finish on many threads at once, so every `record` is a handful of
//! relaxed atomic operations: no lock, no allocation. Summaries are read
//! periodically by a background task. Time is passed in as `now_ms`,
//! milliseconds from any monotonic origin, so the caller owns the clock.
//!
//! # Sliding windows
//!
//! Time is cut into epochs of `slot_ms`: a sample at `now_ms` belongs to epoch
//! `e = now_ms / slot_ms`. A window keeps a ring of `slots` counter sets;
//! epoch `e` lives in slot `e % slots`, which carries an atomic epoch tag. The
//! first sample of a newer epoch to reach a slot moves the tag forward with a
//! compare-and-swap and zeroes the slot's counters.
//!
//! A summary at `now_ms` (epoch `c`) adds up exactly the slots tagged with an
//! epoch in `c - slots + 1 ..= c`: the current, partly elapsed slot and the
//! `slots - 1` full slots before it. A sample therefore ages out at the first
//! instant of epoch `e + slots`. Slots with an older tag are ignored even if
//! they were never overwritten, so a window left idle for an hour summarises
//! as empty.
//!
//! A sample is dropped when its epoch is `slots` or more epochs behind the
//! newest epoch recorded so far, or when its slot already holds a newer epoch;
//! late samples that are still inside the window are counted normally.
//!
//! Moving the tag and zeroing the counters are two steps, not one atomic
//! action: a sample recorded concurrently with a reset may be lost, or counted
//! in the new epoch. Only samples in flight at that slot boundary are affected
//! (at most one per concurrent writer per reset); each sample is added at most
//! once and counters only ever increase or are zeroed, so counts never
//! underflow. Readers use relaxed loads; the counters of a slot are not a
//! consistent snapshot, and summaries clamp where that matters (errors never
//! exceed the total).
//!
//! # Latency histogram
//!
//! Each latency slot holds a log-linear histogram with 4 sub-buckets per power
//! of two. Values `0..=7` µs get one exact bucket each; a value `v ≥ 4` with
//! `k = floor(log2 v)` and `s = (v >> (k - 2)) & 3` lands in bucket
//! `4·(k − 1) + s`, which holds `[(4 + s)·2^(k−2), (5 + s)·2^(k−2))`. Powers
//! `k ≤ 27` are kept: 108 buckets covering everything below 2^28 µs (≈ 268 s).
//! Larger values are counted in the top bucket; the per-slot maximum keeps
//! their true value.
//!
//! A bucket is at most a quarter as wide as its lower bound, and a quantile is
//! reported as the midpoint of the integer values its bucket holds, so the
//! relative error is at most 12.5% for values in range. The quantile `q` is
//! the bucket of the sample at 0-based sorted position `⌊q·n⌋`: the smallest
//! value with more than `q·n` samples at or below it (for a 99%/1% mix, p99 is
//! in the slow mode). It is capped at the window's maximum.
//!
//! The mean is `Σ sum / Σ count` over the live slots. Each sample adds
//! `min(latency, u32::MAX)` µs (≈ 71.6 minutes) to its slot's `u64` sum, so a
//! slot's sum cannot wrap before it holds 2^32 samples; sums across slots are
//! added with saturation. Bucket counters are `u32` and saturate at
//! `u32::MAX`; the per-slot sample count is a `u64`. Memory per slot is
//! 5 × 8 bytes (tag, count, sum, max, min) + 108 × 4 bytes (buckets) = 472
//! bytes.
//!
//! Each slot also keeps its smallest sample, so a summary reads only the
//! buckets between a slot's smallest and largest sample: a backend whose
//! latencies span a factor of 4 has about 9 buckets to read per slot, not
//! 108. A sample whose bucket lies outside the range read (one recorded while
//! the summary runs, or across a slot reset) is left out, like any other
//! sample in flight at that moment.
//!
//! # Rates
//!
//! [`OutcomeSummary::window_ms`] is the span the summed slots actually cover:
//!
//! ```text
//! start     = max(first recorded epoch, c − slots + 1) · slot_ms
//! window_ms = max(now_ms − start, slot_ms)
//! ```
//!
//! In steady state that is `(slots − 1)·slot_ms` plus the elapsed part of the
//! current slot (always below `slots·slot_ms`); during warm-up it is the time
//! since the start of the first sample's epoch. The `slot_ms` floor keeps the
//! rate sensible in the first moments after the first sample.
//!
//! # EWMA and peak EWMA
//!
//! For a sample `x` arriving `dt` ms after the previous update, with time
//! constant `τ` and weight `w = exp(−dt/τ)`:
//!
//! ```text
//! ewma ← w·ewma + (1 − w)·x
//! peak ← x                       if x > peak
//! peak ← w·peak + (1 − w)·x      otherwise
//! ```
//!
//! The first sample initialises both. After a step change the EWMA has covered
//! `1 − e^(−t/τ)` of the gap at time `t` (63% after one `τ`), however the
//! samples are spaced. A sample in the same millisecond as the previous update
//! has `w = 1`: it cannot move the EWMA, only raise the peak. Every stretch of
//! time is claimed by exactly one update (a `fetch_max` on the last-update
//! timestamp), so concurrent updates never apply the same decay twice.
//!
//! Reading the peak at `now_ms` also decays it over the idle time since the
//! last update, toward zero: `peak · exp(−(now_ms − last)/τ)`. An idle backend
//! is thus not held back by an old spike, nor by a slow average, forever; its
//! next sample sets the peak to a real value again. The plain EWMA is not
//! decayed on read.

use std::cmp::Ordering as EpochOrder;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

/// Bits of the sub-bucket index: 2^2 = 4 sub-buckets per power of two.
const SUB_BUCKET_BITS: u32 = 2;
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;
/// Largest power of two (in µs) with its own buckets: 2^27 µs ≈ 134 s.
const MAX_EXPONENT: u32 = 27;
/// Exact buckets below `SUB_BUCKETS`, then `SUB_BUCKETS` per power of two.
const BUCKET_COUNT: usize = (SUB_BUCKETS * (MAX_EXPONENT - SUB_BUCKET_BITS + 2) as u64) as usize;
/// Largest contribution of one sample to a slot's latency sum.
const MAX_SUMMED_LATENCY_US: u64 = u32::MAX as u64;
/// `first_epoch` value of an [`OutcomeWindow`] that has no sample yet.
const NO_EPOCH: u64 = u64::MAX;
/// Bits stored by [`LatencyEwma`] before its first sample (a NaN pattern that
/// arithmetic on finite samples never produces).
const NO_VALUE: u64 = u64::MAX;

/// Sliding-window latency distribution over a ring of `slots` slots of
/// `slot_ms` each.
pub struct LatencyWindow {
    ring: SlotRing<LatencyCounters>,
}

/// Latency distribution over one window. All fields are zero when the window
/// holds no sample.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl LatencyWindow {
    /// A window spanning `slots` slots of `slot_ms` milliseconds.
    ///
    /// # Panics
    ///
    /// If `slots == 0` or `slot_ms == 0`.
    pub fn new(slots: usize, slot_ms: u64) -> Self {
        Self {
            ring: SlotRing::new(slots, slot_ms),
        }
    }

    /// Records one request that took `latency_us`, finished at `now_ms`.
    pub fn record(&self, now_ms: u64, latency_us: u64) {
        let Some(slot) = self.ring.counters_for(self.ring.epoch(now_ms)) else {
            return;
        };
        slot.count.fetch_add(1, Relaxed);
        slot.sum_us
            .fetch_add(latency_us.min(MAX_SUMMED_LATENCY_US), Relaxed);
        if latency_us > slot.max_us.load(Relaxed) {
            slot.max_us.fetch_max(latency_us, Relaxed);
        }
        if latency_us < slot.min_us.load(Relaxed) {
            slot.min_us.fetch_min(latency_us, Relaxed);
        }
        saturating_increment(&slot.buckets[bucket_index(latency_us)]);
    }

    /// The distribution over the window ending at `now_ms`.
    pub fn summary(&self, now_ms: u64) -> LatencySummary {
        let mut buckets = [0u64; BUCKET_COUNT];
        // The merged buckets that can be non-zero, once a slot has any.
        let mut used: Option<std::ops::Range<usize>> = None;
        let mut count = 0u64;
        let mut sum_us = 0u64;
        let mut max_us = 0u64;
        for slot in self.ring.live_counters(now_ms) {
            count = count.saturating_add(slot.count.load(Relaxed));
            sum_us = sum_us.saturating_add(slot.sum_us.load(Relaxed));
            let slot_max_us = slot.max_us.load(Relaxed);
            max_us = max_us.max(slot_max_us);
            let Some(range) = slot.bucket_range(slot_max_us) else {
                continue;
            };
            used = Some(match used {
                Some(seen) => seen.start.min(range.start)..seen.end.max(range.end),
                None => range.clone(),
            });
            for (merged, bucket) in buckets[range.clone()].iter_mut().zip(&slot.buckets[range]) {
                *merged = merged.saturating_add(u64::from(bucket.load(Relaxed)));
            }
        }
        if count == 0 {
            return LatencySummary::default();
        }
        let used = used.unwrap_or_default();
        let (first, merged) = (used.start, &buckets[used]);
        LatencySummary {
            count,
            mean_us: sum_us as f64 / count as f64,
            p50_us: quantile_us(merged, first, 50, max_us),
            p99_us: quantile_us(merged, first, 99, max_us),
            max_us: max_us as f64,
        }
    }
}

/// Sliding-window success/failure counts.
pub struct OutcomeWindow {
    ring: SlotRing<OutcomeCounters>,
    /// Epoch of the earliest sample ever accepted, or [`NO_EPOCH`].
    first_epoch: AtomicU64,
}

/// Request outcomes over one window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OutcomeSummary {
    pub total: u64,
    pub errors: u64,
    /// Span covered by the counts (see the module documentation).
    pub window_ms: u64,
}

impl OutcomeSummary {
    /// `errors / total`, or 0.0 when there were no requests.
    pub fn error_rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.errors as f64 / self.total as f64
        }
    }

    /// Requests per second over `window_ms`, or 0.0 when `window_ms` is 0.
    pub fn per_second(&self) -> f64 {
        if self.window_ms == 0 {
            0.0
        } else {
            self.total as f64 * 1000.0 / self.window_ms as f64
        }
    }
}

impl OutcomeWindow {
    /// A window spanning `slots` slots of `slot_ms` milliseconds.
    ///
    /// # Panics
    ///
    /// If `slots == 0` or `slot_ms == 0`.
    pub fn new(slots: usize, slot_ms: u64) -> Self {
        Self {
            ring: SlotRing::new(slots, slot_ms),
            first_epoch: AtomicU64::new(NO_EPOCH),
        }
    }

    /// Records one request that finished at `now_ms`.
    pub fn record(&self, now_ms: u64, success: bool) {
        let epoch = self.ring.epoch(now_ms);
        let Some(slot) = self.ring.counters_for(epoch) else {
            return;
        };
        slot.total.fetch_add(1, Relaxed);
        if !success {
            slot.errors.fetch_add(1, Relaxed);
        }
        if epoch < self.first_epoch.load(Relaxed) {
            self.first_epoch.fetch_min(epoch, Relaxed);
        }
    }

    /// The counts over the window ending at `now_ms`.
    pub fn summary(&self, now_ms: u64) -> OutcomeSummary {
        let mut total = 0u64;
        let mut errors = 0u64;
        for slot in self.ring.live_counters(now_ms) {
            let slot_total = slot.total.load(Relaxed);
            // A slot read in the middle of a reset may show stale errors.
            let slot_errors = slot.errors.load(Relaxed).min(slot_total);
            total = total.saturating_add(slot_total);
            errors = errors.saturating_add(slot_errors);
        }
        OutcomeSummary {
            total,
            errors,
            window_ms: self.covered_ms(now_ms),
        }
    }

    /// Span from the start of the oldest epoch the summary can include to
    /// `now_ms`, at least one slot.
    fn covered_ms(&self, now_ms: u64) -> u64 {
        let slot_ms = self.ring.slot_ms;
        let oldest_in_window = self
            .ring
            .epoch(now_ms)
            .saturating_sub(self.ring.slot_count() - 1);
        // With no sample yet, `NO_EPOCH` pushes the start past `now_ms`.
        let start_epoch = self.first_epoch.load(Relaxed).max(oldest_in_window);
        now_ms
            .saturating_sub(start_epoch.saturating_mul(slot_ms))
            .max(slot_ms)
    }
}

/// Exponentially weighted moving average of latency, plus a "peak EWMA"
/// (Finagle/Linkerd style): the peak jumps to a higher sample at once and
/// decays toward lower samples with time constant `tau_ms`.
pub struct LatencyEwma {
    tau_ms: u64,
    /// Time of the latest update; each update claims the time since the
    /// previous one.
    last_update_ms: AtomicU64,
    /// `f64` bits of the EWMA, or [`NO_VALUE`].
    ewma_bits: AtomicU64,
    /// `f64` bits of the peak EWMA as of `last_update_ms`, or [`NO_VALUE`].
    peak_bits: AtomicU64,
}

impl LatencyEwma {
    /// An empty average with time constant `tau_ms`. With `tau_ms == 0` there
    /// is no memory: each later sample replaces both values, and an idle
    /// peak reads as zero.
    pub fn new(tau_ms: u64) -> Self {
        Self {
            tau_ms,
            last_update_ms: AtomicU64::new(0),
            ewma_bits: AtomicU64::new(NO_VALUE),
            peak_bits: AtomicU64::new(NO_VALUE),
        }
    }

    /// Records one request that took `latency_us`, finished at `now_ms`.
    pub fn record(&self, now_ms: u64, latency_us: u64) {
        let weight = decay_weight(self.claim_elapsed_ms(now_ms), self.tau_ms);
        let sample = latency_us as f64;
        let blend = |old: f64| old * weight + sample * (1.0 - weight);
        update_value(&self.ewma_bits, |ewma| ewma.map_or(sample, blend));
        update_value(&self.peak_bits, |peak| match peak {
            Some(peak) if sample <= peak => blend(peak),
            _ => sample,
        });
    }

    /// The EWMA as of the latest sample; `None` before the first sample.
    pub fn ewma_us(&self) -> Option<f64> {
        decode_value(self.ewma_bits.load(Relaxed))
    }

    /// The peak EWMA decayed toward zero over the idle time up to `now_ms`;
    /// `None` before the first sample.
    pub fn peak_us(&self, now_ms: u64) -> Option<f64> {
        let peak = decode_value(self.peak_bits.load(Relaxed))?;
        let idle_ms = now_ms.saturating_sub(self.last_update_ms.load(Relaxed));
        Some(peak * decay_weight(idle_ms, self.tau_ms))
    }

    /// Moves the last-update time to `now_ms` and returns how far it moved:
    /// zero for a sample that is not newer than the latest update.
    fn claim_elapsed_ms(&self, now_ms: u64) -> u64 {
        if now_ms <= self.last_update_ms.load(Relaxed) {
            return 0;
        }
        now_ms.saturating_sub(self.last_update_ms.fetch_max(now_ms, Relaxed))
    }
}

/// `exp(−elapsed/tau)`, exactly 1 when no time has passed.
fn decay_weight(elapsed_ms: u64, tau_ms: u64) -> f64 {
    if elapsed_ms == 0 {
        1.0
    } else {
        (-(elapsed_ms as f64) / tau_ms as f64).exp()
    }
}

fn decode_value(bits: u64) -> Option<f64> {
    (bits != NO_VALUE).then(|| f64::from_bits(bits))
}

/// Replaces the `f64` in `cell` with `next(current)`, retrying on contention.
fn update_value(cell: &AtomicU64, next: impl Fn(Option<f64>) -> f64) {
    let mut current = cell.load(Relaxed);
    loop {
        let new = next(decode_value(current)).to_bits();
        match cell.compare_exchange_weak(current, new, Relaxed, Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

/// Counters kept in every slot of a [`SlotRing`].
trait SlotCounters {
    fn zeroed() -> Self;
    /// Zeroes the counters when their slot moves to a new epoch.
    fn reset(&self);
}

struct Slot<C> {
    /// Epoch whose samples the counters hold.
    epoch: AtomicU64,
    counters: C,
}

/// The ring of epoch-tagged slots shared by both windows.
struct SlotRing<C> {
    slots: Box<[Slot<C>]>,
    slot_ms: u64,
    /// Newest epoch any sample was recorded for.
    newest_epoch: AtomicU64,
}

impl<C: SlotCounters> SlotRing<C> {
    fn new(slots: usize, slot_ms: u64) -> Self {
        assert!(slots > 0, "a window needs at least one slot");
        assert!(slot_ms > 0, "window slots must last at least 1 ms");
        Self {
            slots: (0..slots)
                .map(|_| Slot {
                    epoch: AtomicU64::new(0),
                    counters: C::zeroed(),
                })
                .collect(),
            slot_ms,
            newest_epoch: AtomicU64::new(0),
        }
    }

    fn epoch(&self, now_ms: u64) -> u64 {
        now_ms / self.slot_ms
    }

    fn slot_count(&self) -> u64 {
        self.slots.len() as u64
    }

    /// The counters to add a sample of `epoch` to, claiming and resetting a
    /// slot that still holds an older epoch; `None` if the sample is too old.
    fn counters_for(&self, epoch: u64) -> Option<&C> {
        let newest = self.newest_epoch.load(Relaxed);
        if epoch.saturating_add(self.slot_count()) <= newest {
            return None;
        }
        if epoch > newest {
            self.newest_epoch.fetch_max(epoch, Relaxed);
        }
        let slot = &self.slots[(epoch % self.slot_count()) as usize];
        let mut tag = slot.epoch.load(Relaxed);
        loop {
            match tag.cmp(&epoch) {
                EpochOrder::Equal => return Some(&slot.counters),
                // The slot has moved on: this sample is a full window late.
                EpochOrder::Greater => return None,
                EpochOrder::Less => {
                    match slot.epoch.compare_exchange(tag, epoch, Relaxed, Relaxed) {
                        Ok(_) => {
                            slot.counters.reset();
                            return Some(&slot.counters);
                        }
                        Err(current) => tag = current,
                    }
                }
            }
        }
    }

    /// Counters of the slots inside the window ending at `now_ms`.
    fn live_counters(&self, now_ms: u64) -> impl Iterator<Item = &C> + '_ {
        let current = self.epoch(now_ms);
        let slot_count = self.slot_count();
        self.slots.iter().filter_map(move |slot| {
            let epoch = slot.epoch.load(Relaxed);
            (epoch <= current && current - epoch < slot_count).then_some(&slot.counters)
        })
    }
}

struct LatencyCounters {
    count: AtomicU64,
    /// Sum of `min(latency, MAX_SUMMED_LATENCY_US)`.
    sum_us: AtomicU64,
    max_us: AtomicU64,
    /// Smallest latency recorded, `u64::MAX` while there is none.
    min_us: AtomicU64,
    buckets: [AtomicU32; BUCKET_COUNT],
}

impl LatencyCounters {
    /// The buckets from the one holding `min_us` to the one holding
    /// `max_us` (as read by the caller), the only ones a sample can be in;
    /// `None` before the slot's first sample.
    fn bucket_range(&self, max_us: u64) -> Option<std::ops::Range<usize>> {
        let min_us = self.min_us.load(Relaxed);
        (min_us <= max_us).then(|| bucket_index(min_us)..bucket_index(max_us) + 1)
    }
}

impl SlotCounters for LatencyCounters {
    fn zeroed() -> Self {
        Self {
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
            min_us: AtomicU64::new(u64::MAX),
            buckets: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    fn reset(&self) {
        self.count.store(0, Relaxed);
        self.sum_us.store(0, Relaxed);
        self.max_us.store(0, Relaxed);
        self.min_us.store(u64::MAX, Relaxed);
        for bucket in &self.buckets {
            bucket.store(0, Relaxed);
        }
    }
}

struct OutcomeCounters {
    total: AtomicU64,
    errors: AtomicU64,
}

impl SlotCounters for OutcomeCounters {
    fn zeroed() -> Self {
        Self {
            total: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    fn reset(&self) {
        self.errors.store(0, Relaxed);
        self.total.store(0, Relaxed);
    }
}

fn saturating_increment(counter: &AtomicU32) {
    // `checked_add` fails only at `u32::MAX`, where the counter stays.
    let _ = counter.fetch_update(Relaxed, Relaxed, |count| count.checked_add(1));
}

/// The histogram bucket of a latency (see the module documentation).
fn bucket_index(latency_us: u64) -> usize {
    if latency_us < SUB_BUCKETS {
        return latency_us as usize;
    }
    let exponent = latency_us.ilog2();
    if exponent > MAX_EXPONENT {
        return BUCKET_COUNT - 1;
    }
    let sub_bucket = (latency_us >> (exponent - SUB_BUCKET_BITS)) & (SUB_BUCKETS - 1);
    (SUB_BUCKETS * u64::from(exponent - SUB_BUCKET_BITS + 1) + sub_bucket) as usize
}

/// Lowest value and width of a histogram bucket.
fn bucket_range(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < SUB_BUCKETS {
        return (index, 1);
    }
    let shift = index / SUB_BUCKETS - 1;
    let sub_bucket = index % SUB_BUCKETS;
    ((SUB_BUCKETS + sub_bucket) << shift, 1 << shift)
}

/// Midpoint of the integer values a bucket holds.
fn bucket_midpoint(index: usize) -> f64 {
    let (lowest, width) = bucket_range(index);
    lowest as f64 + (width - 1) as f64 / 2.0
}

/// The `percent` quantile of merged bucket counts, capped at `max_us`; 0.0
/// for empty buckets. `buckets` are the histogram's buckets from index
/// `first` on, and every bucket outside them is empty.
fn quantile_us(buckets: &[u64], first: usize, percent: u64, max_us: u64) -> f64 {
    let total = buckets.iter().fold(0u64, |sum, &n| sum.saturating_add(n));
    if total == 0 {
        return 0.0;
    }
    // 0-based sorted position ⌊q·n⌋, below `total` since `percent < 100`.
    let position = (u128::from(total) * u128::from(percent) / 100) as u64;
    let mut seen = 0u64;
    let offset = buckets
        .iter()
        .position(|&n| {
            seen = seen.saturating_add(n);
            seen > position
        })
        .unwrap_or(buckets.len() - 1);
    bucket_midpoint(first + offset).min(max_us as f64)
}

#[cfg(test)]
mod tests;
