//! Talking to a container's monitor without tying up a thread: the runtime's attach protocol
//! (`runtime::attach` frames and events) over a tokio unix stream.

use std::io;
use std::path::Path;

use runtime::attach::{encode, Event, FrameBuffer, Hello, Kind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// Receives events from a monitor.
pub struct Events {
    read: OwnedReadHalf,
    frames: FrameBuffer,
}

/// Sends stdin, resizes and signals to a monitor.
pub struct Commands {
    write: OwnedWriteHalf,
}

/// Connect to the attach socket of a running container and say hello.
pub async fn connect(socket: &Path, hello: Hello) -> io::Result<(Events, Commands)> {
    // The runtime's connect copes with socket paths longer than a socket address holds.
    let path = socket.to_path_buf();
    let stream = tokio::task::spawn_blocking(move || runtime::attach::connect(&path))
        .await
        .map_err(io::Error::other)??;
    let (events, mut commands) = from_std(stream)?;
    commands.send(Kind::Hello, &hello.encode()).await?;
    Ok((events, commands))
}

/// Wrap an already connected stream (the end a start hands back), hello already said.
pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<(Events, Commands)> {
    stream.set_nonblocking(true)?;
    Ok(split(UnixStream::from_std(stream)?))
}

fn split(stream: UnixStream) -> (Events, Commands) {
    let (read, write) = stream.into_split();
    (
        Events {
            read,
            frames: FrameBuffer::default(),
        },
        Commands { write },
    )
}

impl Events {
    /// The next event; `None` when the monitor closed the connection.
    pub async fn next(&mut self) -> io::Result<Option<Event>> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some((kind, data)) = self.frames.next_frame()? {
                return Event::from_frame(kind, data).map(Some);
            }
            match self.read.read(&mut buf).await {
                Ok(0) => return Ok(None),
                Ok(n) => self.frames.extend(&buf[..n]),
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => return Ok(None),
                Err(err) => return Err(err),
            }
        }
    }

    /// Skip to the exit frame: the exit code, or `None` if the monitor went away without one.
    pub async fn exit_code(&mut self) -> io::Result<Option<i32>> {
        loop {
            match self.next().await? {
                Some(Event::Exit(code)) => return Ok(Some(code)),
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }
}

impl Commands {
    async fn send(&mut self, kind: Kind, data: &[u8]) -> io::Result<()> {
        self.write.write_all(&encode(kind, data)).await
    }

    pub async fn stdin(&mut self, data: &[u8]) -> io::Result<()> {
        // An empty stdin frame means "closed": data is never sent as one.
        if data.is_empty() {
            return Ok(());
        }
        self.send(Kind::Stdin, data).await
    }

    pub async fn close_stdin(&mut self) -> io::Result<()> {
        self.send(Kind::Stdin, &[]).await
    }

    pub async fn resize(&mut self, rows: u16, cols: u16) -> io::Result<()> {
        let mut data = [0u8; 4];
        data[..2].copy_from_slice(&rows.to_be_bytes());
        data[2..].copy_from_slice(&cols.to_be_bytes());
        self.send(Kind::Resize, &data).await
    }
}
