//! Smooth weighted round robin (nginx's algorithm): one precomputed cycle of
//! backend indices per pool, built when the configuration is compiled, in
//! which backend `i` appears `w_i / gcd(w)` times, as evenly interleaved as
//! possible. Each step adds every weight to its backend's running total,
//! picks the largest total and subtracts the weight sum from it.

/// Longest round-robin cycle kept per pool; larger weight sums are scaled down.
const MAX_SCHEDULE_LEN: u64 = 4096;

/// One smooth weighted round-robin cycle over `weights` (zero = never chosen).
pub fn smooth_wrr_schedule(weights: &[u32]) -> Vec<u32> {
    let weights = reduce_weights(weights);
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += i64::from(w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        schedule.push(best as u32);
    }
    schedule
}

/// Divide by the common factor, then scale so the sum fits `MAX_SCHEDULE_LEN`
/// (each positive weight stays at least 1).
fn reduce_weights(weights: &[u32]) -> Vec<u32> {
    let divisor = weights.iter().fold(0u32, |g, &w| gcd(g, w)).max(1);
    let reduced: Vec<u32> = weights.iter().map(|&w| w / divisor).collect();
    let total: u64 = reduced.iter().map(|&w| u64::from(w)).sum();
    if total <= MAX_SCHEDULE_LEN {
        return reduced;
    }
    reduced
        .iter()
        .map(|&w| match w {
            0 => 0,
            w => ((u64::from(w) * MAX_SCHEDULE_LEN / total) as u32).max(1),
        })
        .collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(schedule: &[u32], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &i in schedule {
            c[i as usize] += 1;
        }
        c
    }

    #[test]
    fn schedule_follows_weights_and_interleaves() {
        let s = smooth_wrr_schedule(&[5, 1, 1]);
        assert_eq!(s, vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(counts(&smooth_wrr_schedule(&[1000, 300]), 2), vec![10, 3]);
        assert_eq!(smooth_wrr_schedule(&[0, 2]), vec![1]);
        assert!(smooth_wrr_schedule(&[0, 0]).is_empty());
        assert!(smooth_wrr_schedule(&[]).is_empty());
    }

    #[test]
    fn huge_weights_are_scaled_but_keep_every_backend() {
        let s = smooth_wrr_schedule(&[1_000_000, 999_999, 1]);
        assert!(s.len() as u64 <= MAX_SCHEDULE_LEN + 3);
        let c = counts(&s, 3);
        assert!(c[2] >= 1);
        assert!((c[0] as i64 - c[1] as i64).abs() <= 1);
    }
}
