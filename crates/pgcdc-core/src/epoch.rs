//! PostgreSQL's epoch, 2000-01-01 00:00:00 UTC, against the Unix epoch (1970-01-01).
//!
//! PostgreSQL's binary dates and timestamps, its commit times and its replication
//! clocks count from 2000-01-01; Arrow, Parquet and pgcdc's own metadata count from
//! 1970-01-01. These are the one copy of the offset between the two; converting is an
//! addition (PostgreSQL → Unix) or a subtraction. No conversion functions live here:
//! each caller decides what an overflow or an infinity means for it.

/// Days from 1970-01-01 to 2000-01-01 (30 years, 7 of them leap years).
pub const PG_EPOCH_OFFSET_DAYS: i32 = 10_957;

/// Microseconds from 1970-01-01 00:00:00 UTC to 2000-01-01 00:00:00 UTC.
pub const PG_EPOCH_OFFSET_MICROS: i64 = PG_EPOCH_OFFSET_DAYS as i64 * 86_400 * 1_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_thirty_years_with_seven_leap_days() {
        assert_eq!(PG_EPOCH_OFFSET_DAYS, 30 * 365 + 7);
        // `SELECT extract(epoch FROM timestamptz '2000-01-01 00:00:00+00')` = 946684800.
        assert_eq!(PG_EPOCH_OFFSET_MICROS, 946_684_800_000_000);
    }
}
