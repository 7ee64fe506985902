//! Output helpers shared by the commands: ages, short ids, aligned tables.

use chrono::{DateTime, Utc};

pub use runtime::humanize::human_duration;

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
    /// A column's width, padding included, is at least this (tabwriter's minwidth).
    min_width: usize,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
            min_width: 0,
        }
    }

    /// tabwriter's minwidth: `docker top` uses 20, `docker stats` 10.
    pub fn min_width(mut self, width: usize) -> Table {
        self.min_width = width;
        self
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
                    let pad = (widths[i] + 3).max(self.min_width) - cell.chars().count();
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

    #[test]
    fn table_aligns_columns_and_trims_line_ends() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["wide cell".into(), "".into()]);
        assert_eq!(t.render(), "A           LONGER\nwide cell\n");
    }
}
