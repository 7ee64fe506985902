//! Extract a tar stream (any supported compression) into an existing directory:
//! `extract ARCHIVE|- DEST`. Used by bench/import.sh to time extraction alone.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, dest] = args.as_slice() else {
        eprintln!("usage: extract ARCHIVE|- DEST");
        return ExitCode::from(2);
    };
    let input: Box<dyn Read> = if source == "-" {
        Box::new(io::stdin().lock())
    } else {
        match File::open(source) {
            Ok(file) => Box::new(file),
            Err(err) => {
                eprintln!("Error: open {source}: {err}");
                return ExitCode::FAILURE;
            }
        }
    };
    match archive::extract(input, Path::new(dest)) {
        Ok(stats) => {
            eprintln!("{} entries, {} bytes", stats.entries, stats.bytes);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("Error: {err}");
            ExitCode::FAILURE
        }
    }
}
