//! Durations as Docker words them, for `docker ps` and `docker images` in the CLI and the API.

/// Docker's `units.HumanDuration` (docker/go-units): "Less than a second", "About a minute",
/// "3 weeks", ... Negative durations read as "Less than a second", as there.
pub fn human_duration(d: chrono::Duration) -> String {
    HumanDuration(d).to_string()
}

/// [`human_duration`] written where it is displayed, as a table cell of a long listing is,
/// without a string of its own.
pub struct HumanDuration(pub chrono::Duration);

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        let seconds = d.num_seconds();
        if seconds < 1 {
            return f.write_str("Less than a second");
        }
        if seconds == 1 {
            return f.write_str("1 second");
        }
        if seconds < 60 {
            return write!(f, "{seconds} seconds");
        }
        let minutes = d.num_minutes();
        if minutes == 1 {
            return f.write_str("About a minute");
        }
        if minutes < 60 {
            return write!(f, "{minutes} minutes");
        }
        // Docker rounds hours to the nearest one.
        let hours = (d.num_seconds() as f64 / 3600.0 + 0.5) as i64;
        if hours == 1 {
            return f.write_str("About an hour");
        }
        if hours < 48 {
            return write!(f, "{hours} hours");
        }
        if hours < 24 * 7 * 2 {
            return write!(f, "{} days", hours / 24);
        }
        if hours < 24 * 30 * 2 {
            return write!(f, "{} weeks", hours / 24 / 7);
        }
        if hours < 24 * 365 * 2 {
            return write!(f, "{} months", hours / 24 / 30);
        }
        write!(f, "{} years", d.num_hours() / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn durations_read_like_docker() {
        let cases = [
            (Duration::seconds(-5), "Less than a second"),
            (Duration::seconds(0), "Less than a second"),
            (Duration::milliseconds(300), "Less than a second"),
            (Duration::seconds(1), "1 second"),
            (Duration::seconds(30), "30 seconds"),
            (Duration::seconds(45), "45 seconds"),
            (Duration::seconds(90), "About a minute"),
            (Duration::seconds(600), "10 minutes"),
            (Duration::minutes(59), "59 minutes"),
            (Duration::seconds(3600), "About an hour"),
            (Duration::minutes(70), "About an hour"),
            (Duration::hours(5), "5 hours"),
            (Duration::hours(47), "47 hours"),
            (Duration::days(3), "3 days"),
            (Duration::days(21), "3 weeks"),
            (Duration::days(120), "4 months"),
            (Duration::days(365 * 3), "3 years"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn hours_are_rounded_before_the_day_and_week_bounds_as_in_go_units() {
        // 47.5 hours round to 48: days, not hours.
        assert_eq!(human_duration(Duration::minutes(47 * 60 + 30)), "2 days");
        assert_eq!(human_duration(Duration::minutes(47 * 60 + 29)), "47 hours");
        // Weeks end at 60 days.
        assert_eq!(human_duration(Duration::days(59)), "8 weeks");
        assert_eq!(human_duration(Duration::days(60)), "2 months");
        // Months end at two years.
        assert_eq!(human_duration(Duration::days(729)), "24 months");
        assert_eq!(human_duration(Duration::days(730)), "2 years");
    }
}
