//! What a pull reports while it runs: Docker's progress messages, one kind per status, so a
//! terminal renderer, a plain-line renderer and the Engine API's JSON stream say the same.

use std::fmt;

/// One progress message. `id` is what Docker keys its lines by: the tag or digest for
/// `PullingFrom`, the short blob digest for layer messages, none for `Digest` and `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `TAG: Pulling from REPOSITORY`
    PullingFrom {
        id: String,
        repository: String,
    },
    /// The layer is in the store already.
    AlreadyExists {
        layer: String,
    },
    /// The layer will be downloaded.
    PullingFsLayer {
        layer: String,
    },
    /// Queued behind the downloads already running.
    Waiting {
        layer: String,
    },
    Downloading {
        layer: String,
        current: u64,
        total: u64,
    },
    VerifyingChecksum {
        layer: String,
    },
    DownloadComplete {
        layer: String,
    },
    /// `current` of `total` compressed bytes applied.
    Extracting {
        layer: String,
        current: u64,
        total: u64,
    },
    PullComplete {
        layer: String,
    },
    /// `Digest: sha256:…`, the repo digest.
    Digest {
        digest: String,
    },
    /// `Status: Downloaded newer image for NAME` or `Status: Image is up to date for NAME`.
    Status {
        updated: bool,
        name: String,
    },
}

impl Event {
    /// The key of the line this message updates.
    pub fn id(&self) -> Option<&str> {
        use Event::*;
        match self {
            PullingFrom { id, .. } => Some(id),
            AlreadyExists { layer }
            | PullingFsLayer { layer }
            | Waiting { layer }
            | Downloading { layer, .. }
            | VerifyingChecksum { layer }
            | DownloadComplete { layer }
            | Extracting { layer, .. }
            | PullComplete { layer } => Some(layer),
            Digest { .. } | Status { .. } => None,
        }
    }

    /// Docker's status text.
    pub fn status(&self) -> String {
        use Event::*;
        match self {
            PullingFrom { repository, .. } => format!("Pulling from {repository}"),
            AlreadyExists { .. } => "Already exists".into(),
            PullingFsLayer { .. } => "Pulling fs layer".into(),
            Waiting { .. } => "Waiting".into(),
            Downloading { .. } => "Downloading".into(),
            VerifyingChecksum { .. } => "Verifying Checksum".into(),
            DownloadComplete { .. } => "Download complete".into(),
            Extracting { .. } => "Extracting".into(),
            PullComplete { .. } => "Pull complete".into(),
            Digest { digest } => format!("Digest: {digest}"),
            Status {
                updated: true,
                name,
            } => format!("Status: Downloaded newer image for {name}"),
            Status {
                updated: false,
                name,
            } => format!("Status: Image is up to date for {name}"),
        }
    }

    /// `(current, total)` for the messages that carry progress.
    pub fn progress(&self) -> Option<(u64, u64)> {
        match self {
            Event::Downloading { current, total, .. }
            | Event::Extracting { current, total, .. } => Some((*current, *total)),
            _ => None,
        }
    }

    /// Docker's progress text: `[=====>      ]  1.23MB/4.56MB`.
    pub fn progress_text(&self, width: usize) -> Option<String> {
        let (current, total) = self.progress()?;
        Some(progress_bar(current, total, width))
    }
}

/// `ID: STATUS PROGRESS`, as Docker prints a line.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(id) = self.id() {
            write!(f, "{id}: ")?;
        }
        write!(f, "{}", self.status())?;
        if let Some(bar) = self.progress_text(50) {
            write!(f, " {bar}")?;
        }
        Ok(())
    }
}

/// Docker's bar: `[` + `=`s + `>` + spaces + `] ` + `current/total` in go-units sizes.
pub fn progress_bar(current: u64, total: u64, width: usize) -> String {
    let numbers = format!("{:>8}/{}", human_size(current), human_size(total));
    if total == 0 || current > total {
        return numbers;
    }
    let bars = (width as u64 * current / total) as usize;
    let bars = bars.min(width.saturating_sub(1));
    format!(
        "[{}>{}] {numbers}",
        "=".repeat(bars),
        " ".repeat(width - 1 - bars)
    )
}

/// go-units' HumanSize: decimal units, four significant digits.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", significant(size, 4), UNITS[unit])
}

/// `%.Ng` without trailing zeros, as Go prints it for these magnitudes.
fn significant(value: f64, digits: usize) -> String {
    let int_digits = if value < 1.0 {
        1
    } else {
        value.log10().floor() as usize + 1
    };
    let decimals = digits.saturating_sub(int_digits);
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_go_units_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_234_567), "1.235MB");
        assert_eq!(human_size(32_500_000), "32.5MB");
        assert_eq!(human_size(1000), "1kB");
    }

    #[test]
    fn lines_as_docker_prints_them() {
        let e = Event::PullingFrom {
            id: "v1".into(),
            repository: "team/app".into(),
        };
        assert_eq!(e.to_string(), "v1: Pulling from team/app");
        let e = Event::Downloading {
            layer: "0123456789ab".into(),
            current: 50,
            total: 100,
        };
        assert_eq!(
            e.to_string(),
            format!(
                "0123456789ab: Downloading [{}>{}]      50B/100B",
                "=".repeat(25),
                " ".repeat(24)
            )
        );
        let e = Event::Status {
            updated: false,
            name: "x:1".into(),
        };
        assert_eq!(e.to_string(), "Status: Image is up to date for x:1");
        assert_eq!(e.id(), None);
    }
}
