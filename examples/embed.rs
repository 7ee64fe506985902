//! Embedding dock's image store in another tool, without the CLI: import a tarball into a
//! graph, tag it, and list the images with their names.
//!
//! ```text
//! cargo run -p tagstore --example embed -- [FILE.tar [ROOT]]
//! ```
//!
//! Without FILE a small tarball is built in memory; without ROOT a temporary directory is used
//! (and removed afterwards). With a ROOT, the same store `dock --root ROOT images` shows.

use std::error::Error;
use std::fs::File;
use std::io::{self, Cursor, Read, Write};
use std::path::{Path, PathBuf};

use graph::{Graph, NewImage};
use tagstore::TagStore;

/// The repository the example tags its import with.
pub const REPOSITORY: &str = "embed/example";

/// A tar stream with one directory and one file, built in memory.
pub fn small_tarball() -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    builder.append_data(&mut dir, "etc/", io::empty())?;
    let greeting = b"hello from an embedded dock store\n";
    let mut file = tar::Header::new_gnu();
    file.set_mode(0o644);
    file.set_size(greeting.len() as u64);
    builder.append_data(&mut file, "etc/motd", &greeting[..])?;
    builder.into_inner()
}

/// Import `tarball` (or the in-memory one) into the store under `root`, tag it
/// `embed/example:latest`, and write the image list to `out`. Returns the new image's id.
pub fn run(
    root: &Path,
    tarball: Option<&Path>,
    out: &mut dyn Write,
) -> Result<String, Box<dyn Error>> {
    let graph = Graph::open(root.join("graph"))?;
    let tags = TagStore::open(root.join("repositories"))?;

    let (layer, source): (Box<dyn Read>, String) = match tarball {
        Some(path) => (
            Box::new(File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?),
            path.display().to_string(),
        ),
        None => (
            Box::new(Cursor::new(small_tarball()?)),
            "memory".to_string(),
        ),
    };
    let image = graph.create(
        layer,
        NewImage {
            comment: format!("Imported from {source}"),
            author: "embed example".to_string(),
            ..NewImage::default()
        },
    )?;
    writeln!(out, "imported {} ({} bytes)", image.id, image.size)?;

    // Force: running the example twice on one root moves the tag to the newer import.
    tags.set(&graph, REPOSITORY, "", &image.id, true)?;
    writeln!(out, "tagged {REPOSITORY}:latest")?;

    writeln!(
        out,
        "{:<30} {:<10} {:<12} CREATED",
        "REPOSITORY", "TAG", "ID"
    )?;
    let mut images = graph.all()?;
    images.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    for image in &images {
        let names = tags.names(&image.id)?;
        let names = if names.is_empty() {
            vec!["<none>:<none>".to_string()]
        } else {
            names
        };
        for name in names {
            let (repo, tag) = tagstore::parse_reference(&name);
            let created = image.created.format("%Y-%m-%d %H:%M:%S");
            writeln!(
                out,
                "{repo:<30} {:<10} {:<12} {created}",
                tag.unwrap_or_default(),
                &image.id[..12]
            )?;
        }
    }
    Ok(image.id)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let tarball = args.next().map(PathBuf::from);
    let root_arg = args.next().map(PathBuf::from);
    let temp_root;
    let root = match &root_arg {
        Some(root) => root.as_path(),
        None => {
            temp_root = tempfile::tempdir()?;
            temp_root.path()
        }
    };
    run(root, tarball.as_deref(), &mut io::stdout().lock())?;
    Ok(())
}
