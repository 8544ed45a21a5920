//! Time as the journal records it: UTC wall time, a monotonic boot-time counter and the boot id,
//! so a clock jump between two records is visible (wall time moved, monotonic time did not).

use std::sync::OnceLock;

/// Microseconds since the Unix epoch, UTC (wall clock; may jump when NTP or an officer sets it).
pub fn now_utc_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// Microseconds since boot, including suspend (`CLOCK_BOOTTIME`); never jumps.
pub fn boottime_us() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_BOOTTIME exists on Linux ≥ 2.6.39.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// This boot's 16-byte id: the kernel's `/proc/sys/kernel/random/boot_id`, or a random id drawn
/// once per process where the kernel does not provide one.
pub fn boot_id() -> [u8; 16] {
    static ID: OnceLock<[u8; 16]> = OnceLock::new();
    *ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .and_then(|s| parse_uuid(s.trim()))
            .unwrap_or_else(|| {
                let mut b = [0u8; 16];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
                b
            })
    })
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hexed: String = s.chars().filter(|c| *c != '-').collect();
    let bytes = hex::decode(hexed).ok()?;
    bytes.try_into().ok()
}

/// Formats UTC microseconds as RFC 3339 with microseconds (`2026-11-23T19:38:00.123456Z`).
pub fn format_utc_us(us: i64) -> String {
    match jiff::Timestamp::from_microsecond(us) {
        Ok(t) => format!("{t:.6}"),
        Err(_) => format!("<invalid time {us}>"),
    }
}

/// Formats UTC microseconds in Africa/Cairo local time for people (tz database, DST-aware).
pub fn format_cairo_us(us: i64) -> String {
    let Ok(t) = jiff::Timestamp::from_microsecond(us) else {
        return format!("<invalid time {us}>");
    };
    match jiff::tz::TimeZone::get("Africa/Cairo") {
        Ok(tz) => t.to_zoned_datetime(tz).strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
        Err(_) => format!("{t:.0} (UTC; Africa/Cairo zone data missing)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cairo_observes_dst_from_tz_database() {
        // 2025-07-01 12:00 UTC is 15:00 EEST (DST); 2025-01-01 12:00 UTC is 14:00 EET.
        let summer = jiff::Timestamp::from_second(1_751_371_200).unwrap().as_microsecond();
        let winter = jiff::Timestamp::from_second(1_735_732_800).unwrap().as_microsecond();
        assert!(format_cairo_us(summer).starts_with("2025-07-01 15:00:00"), "{}", format_cairo_us(summer));
        assert!(format_cairo_us(winter).starts_with("2025-01-01 14:00:00"), "{}", format_cairo_us(winter));
    }

    #[test]
    fn utc_format_has_microseconds() {
        assert_eq!(format_utc_us(1_000_001), "1970-01-01T00:00:01.000001Z");
    }

    #[test]
    fn boot_id_is_stable_within_process() {
        assert_eq!(boot_id(), boot_id());
        assert!(boottime_us() > 0);
    }
}
