//! Clock supervision: a logger whose real-time frames show the same large offset, frame
//! after frame, is sent a 1012 set-time, at most once per interval.

use hj212_config::TimeSync;

use crate::sites::SiteState;

/// Offsets of successive real-time frames from one wrong clock agree within this.
const CONSISTENT_MS: u64 = 5_000;

/// Records the logger's clock offset from a fresh real-time frame with DataTime `data_time_ms`
/// in the site's state. Returns the offset when a correction is due: the clock has been off
/// by more than the threshold, consistently, for `confirmations` frames in a row, and was not
/// corrected within `min_interval_secs`.
pub(super) fn observe(state: &mut SiteState, data_time_ms: i64, now_ms: i64, sync: &TimeSync) -> Option<i64> {
    let &TimeSync { enabled, max_offset_secs, min_interval_secs, confirmations } = sync;
    let offset = data_time_ms - now_ms;
    let off = offset.unsigned_abs() > max_offset_secs.saturating_mul(1000);
    // A wrong clock gives the same offset frame after frame (network delay varies by a
    // second or two); resent real-time data comes in bursts whose offsets step by the
    // real-time interval (>= 30 s). Repeats of one DataTime say nothing about the clock.
    let newer = state.last_rtd_ms.is_none_or(|last| data_time_ms > last);
    let consistent = state.clock_offset_ms.is_some_and(|last| (offset - last).unsigned_abs() <= CONSISTENT_MS);
    state.last_rtd_ms = Some(state.last_rtd_ms.map_or(data_time_ms, |last| last.max(data_time_ms)));
    state.drift_streak = match (off, consistent) {
        _ if !newer => state.drift_streak,
        (false, _) => 0,
        (true, true) => state.drift_streak.saturating_add(1),
        (true, false) => 1,
    };
    state.clock_offset_ms = Some(offset);
    let since = state.last_time_set_ms.map_or(u64::MAX, |t| (now_ms - t).unsigned_abs());
    let due = state.drift_streak >= confirmations.max(1) && since >= min_interval_secs.saturating_mul(1000);
    (enabled && due).then_some(offset)
}
