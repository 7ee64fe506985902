//! Output helpers shared by the commands: ages, short ids, aligned tables.

use chrono::{DateTime, Utc};

pub use runtime::humanize::human_duration;
use runtime::humanize::HumanDuration;

/// "3 weeks ago" for a point in the past.
pub fn ago(t: DateTime<Utc>) -> String {
    ago_from(Utc::now(), t)
}

/// [`ago`] as seen at `now`: a listing reads the clock once for all its rows.
pub fn ago_from(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    Ago { now, t }.to_string()
}

/// "3 weeks ago" written where it is displayed ([`Table::cell_fmt`]).
pub struct Ago {
    pub now: DateTime<Utc>,
    pub t: DateTime<Utc>,
}

impl std::fmt::Display for Ago {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ago", HumanDuration(self.now - self.t))
    }
}

/// The 12-character form Docker shows.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Columns aligned like Docker's tabwriter (three spaces between columns). Cells are kept in
/// one buffer: a table of 10,000 rows is two allocations, not 50,000. Each column's width is
/// kept up to date as cells come, so rendering is one pass.
pub struct Table {
    text: String,
    /// Where each cell ends in `text`.
    cell_ends: Vec<usize>,
    /// Where each row's cells end in `cell_ends`.
    row_ends: Vec<usize>,
    /// Each column's widest cell so far, in characters.
    widths: Vec<usize>,
    /// A column's width, padding included, is at least this (tabwriter's minwidth).
    min_width: usize,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        let mut table = Table {
            text: String::new(),
            cell_ends: Vec::new(),
            row_ends: Vec::new(),
            widths: Vec::new(),
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
            self.cell(cell.as_ref());
        }
        self.end_row();
    }

    /// Adds a cell to the row being written.
    pub fn cell(&mut self, text: &str) {
        let start = self.text.len();
        self.text.push_str(text);
        self.end_cell(start);
    }

    /// Adds a cell displayed in place (no string of its own): an [`Ago`], `format_args!`.
    pub fn cell_fmt(&mut self, value: impl std::fmt::Display) {
        use std::fmt::Write;
        let start = self.text.len();
        // Writing to a String cannot fail.
        let _ = write!(self.text, "{value}");
        self.end_cell(start);
    }

    /// Ends the row being written.
    pub fn end_row(&mut self) {
        self.row_ends.push(self.cell_ends.len());
    }

    fn end_cell(&mut self, start: usize) {
        let column = self.cell_ends.len() - self.row_ends.last().copied().unwrap_or(0);
        let width = text_width(&self.text[start..]);
        match self.widths.get_mut(column) {
            Some(widest) => *widest = (*widest).max(width),
            None => self.widths.push(width),
        }
        self.cell_ends.push(self.text.len());
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

    /// The table as text: each line its cells, each padded to its column but the last, which
    /// is as long as it is.
    pub fn render(&self) -> String {
        let columns = self.columns();
        // All lines together are no longer than the text and every line padded in full.
        let padded: usize = columns.iter().rev().skip(1).sum();
        let mut out = String::with_capacity(self.text.len() + self.row_ends.len() * (padded + 1));
        for row in self.rows() {
            push_line(&mut out, row, &columns);
        }
        out
    }

    /// Writes [`Table::render`]'s text to `out` a piece at a time: a listing of thousands of
    /// rows needs no second copy of itself in memory.
    pub fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        const PIECE: usize = 64 << 10;
        let columns = self.columns();
        let mut piece = String::with_capacity(PIECE + 1024);
        for row in self.rows() {
            push_line(&mut piece, row, &columns);
            if piece.len() >= PIECE {
                out.write_all(piece.as_bytes())?;
                piece.clear();
            }
        }
        out.write_all(piece.as_bytes())
    }

    /// Each column's width, padding included.
    fn columns(&self) -> Vec<usize> {
        self.widths
            .iter()
            .map(|width| (width + 3).max(self.min_width))
            .collect()
    }
}

/// Adds the line of `cells` to `out`: each padded to its column but the last, and a newline.
fn push_line<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>, columns: &[usize]) {
    const SPACES: &str = "                                                                ";
    let line_start = out.len();
    let mut cells = cells.zip(columns).peekable();
    while let Some((cell, column)) = cells.next() {
        out.push_str(cell);
        if cells.peek().is_some() {
            let mut pad = column - text_width(cell);
            while pad > 0 {
                let spaces = pad.min(SPACES.len());
                out.push_str(&SPACES[..spaces]);
                pad -= spaces;
            }
        }
    }
    let line_len = out[line_start..].trim_end().len();
    out.truncate(line_start + line_len);
    out.push('\n');
}

/// A cell's width in characters (bytes, for the ASCII most cells are).
fn text_width(text: &str) -> usize {
    if text.is_ascii() {
        text.len()
    } else {
        text.chars().count()
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
        // Cells written in place count as any other; widths are in characters; padding
        // wider than one run of spaces.
        let mut t = Table::new(&["N", "É"]);
        t.cell_fmt(format_args!("{}-{}", 1, 2));
        t.cell("été");
        t.end_row();
        t.row(["x".repeat(70).as_str(), "y"]);
        let wide = format!("{:73}", "N");
        assert_eq!(
            t.render(),
            format!("{wide}É\n{:73}été\n{}   y\n", "1-2", "x".repeat(70))
        );
    }

    #[test]
    fn a_table_longer_than_one_piece_is_written_whole() {
        let mut table = Table::new(&["N", "NAME"]);
        let mut want = format!("{:<8}NAME\n", "N");
        for n in 0..20_000 {
            table.row([n.to_string(), format!("name{n}")]);
            want.push_str(&format!("{n:<8}name{n}\n"));
        }
        let mut written = Vec::new();
        table.write_to(&mut written).unwrap();
        assert!(want.len() > 4 * (64 << 10));
        assert_eq!(String::from_utf8(written).unwrap(), want);
        assert_eq!(table.render(), want);
    }
}
