//! Wall-clock time as Nexent's wire carries it: integer milliseconds since the Unix epoch, UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch. A clock before 1970 reads as 0 rather than failing.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `YYYY-mm-dd HH:MM:SS` in the machine's local time, as Nexent shows index dates.
pub fn format_local_datetime(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|utc| utc.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// `YYYY-mm-ddTHH:MM:SS` in UTC.
pub fn format_iso_utc(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|utc| utc.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}
