//! Output helpers shared by the commands: ages, short ids, aligned tables.

use chrono::{DateTime, Utc};

pub use runtime::humanize::human_duration;

/// "3 weeks ago" for a point in the past.
pub fn ago(t: DateTime<Utc>) -> String {
    ago_from(Utc::now(), t)
}

/// [`ago`] as seen at `now`: a listing reads the clock once for all its rows.
pub fn ago_from(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let mut text = human_duration(now - t);
    text.push_str(" ago");
    text
}

/// The 12-character form Docker shows.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Columns aligned like Docker's tabwriter (three spaces between columns). Cells are kept in
/// one buffer: a table of 10,000 rows is two allocations, not 50,000.
pub struct Table {
    text: String,
    /// Where each cell ends in `text`.
    cell_ends: Vec<usize>,
    /// Where each row's cells end in `cell_ends`.
    row_ends: Vec<usize>,
    /// A column's width, padding included, is at least this (tabwriter's minwidth).
    min_width: usize,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        let mut table = Table {
            text: String::new(),
            cell_ends: Vec::new(),
            row_ends: Vec::new(),
            min_width: 0,
        };
        table.row(header);
        table
    }

    /// tabwriter's minwidth: `docker top` uses 20, `docker stats` 10.
    pub fn min_width(mut self, width: usize) -> Table {
        self.min_width = width;
        self
    }

    pub fn row<S: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = S>) {
        for cell in cells {
            self.text.push_str(cell.as_ref());
            self.cell_ends.push(self.text.len());
        }
        self.row_ends.push(self.cell_ends.len());
    }

    /// Each row's cells.
    fn rows(&self) -> impl Iterator<Item = impl Iterator<Item = &str>> {
        let mut first_cell = 0;
        self.row_ends.iter().map(move |&end| {
            let cells = first_cell..end;
            first_cell = end;
            cells.map(|at| {
                let start = if at == 0 { 0 } else { self.cell_ends[at - 1] };
                &self.text[start..self.cell_ends[at]]
            })
        })
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = Vec::new();
        for row in self.rows() {
            for (i, cell) in row.enumerate() {
                if widths.len() <= i {
                    widths.push(0);
                }
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::with_capacity(self.text.len() + self.cell_ends.len() * 4);
        for row in self.rows() {
            let line_start = out.len();
            let mut row = row.enumerate().peekable();
            while let Some((i, cell)) = row.next() {
                out.push_str(cell);
                if row.peek().is_some() {
                    let pad = (widths[i] + 3).max(self.min_width) - cell.chars().count();
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            let line_len = out[line_start..].trim_end().len();
            out.truncate(line_start + line_len);
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
        t.row(["wide cell", ""]);
        assert_eq!(t.render(), "A           LONGER\nwide cell\n");
        // Rows of any length; a column is as wide as its widest cell.
        let mut t = Table::new(&["ID", "NAME"]).min_width(6);
        t.row(vec!["1".to_string()]);
        t.row(["22", "b", "extra"]);
        assert_eq!(t.render(), "ID    NAME\n1\n22    b      extra\n");
    }
}
