//! Output helpers shared by the commands: ages, short ids, aligned tables.

use chrono::{DateTime, Utc};

/// Docker's `units.HumanDuration`: "Less than a second", "About a minute", "3 weeks", ...
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = d.num_minutes();
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Docker rounds hours to the nearest one.
    let hours = (d.num_seconds() as f64 / 3600.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", d.num_hours() / 24 / 365)
}

/// "3 weeks ago" for a point in the past.
pub fn ago(t: DateTime<Utc>) -> String {
    format!("{} ago", human_duration(Utc::now() - t))
}

/// The 12-character form Docker shows.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Columns aligned like Docker's tabwriter (three spaces between columns).
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count() + 3;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn durations_read_like_docker() {
        let cases = [
            (Duration::milliseconds(300), "Less than a second"),
            (Duration::seconds(1), "1 second"),
            (Duration::seconds(45), "45 seconds"),
            (Duration::seconds(90), "About a minute"),
            (Duration::minutes(59), "59 minutes"),
            (Duration::minutes(70), "About an hour"),
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
    fn table_aligns_columns_and_trims_line_ends() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["wide cell".into(), "".into()]);
        assert_eq!(t.render(), "A           LONGER\nwide cell\n");
    }
}
