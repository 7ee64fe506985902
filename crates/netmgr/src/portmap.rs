//! Published ports as elements of two nftables maps set up once per bridge (see
//! `nft::base_ruleset`): `dnat_any` (protocol . host port -> address . port) for ports
//! published on every local address, and `dnat_addr` (host address . protocol . host port ->
//! address . port) for ports published on one address. Connecting or releasing a container is
//! one batch of element changes, sent to the kernel over a netfilter netlink socket from this
//! process (no `nft` process, no listing): an `nft -f` costs a process start, a batch here
//! about a tenth of a millisecond.
//!
//! Elements are removed with `NFT_MSG_DESTROYSETELEM` (Linux 6.3+), which succeeds when the
//! element is already gone, so a batch may remove leftovers and add the new elements in one
//! transaction; on older kernels removals fall back to `NFT_MSG_DELSETELEM`, one per batch,
//! ignoring elements that are not there.
//!
//! The [`ElementSink`] trait is the seam: [`NetlinkSink`] talks to the kernel, [`Recorder`]
//! records batches for the tests.

use std::io;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::ports::{PortMapping, Proto};

/// Map of ports published on every local address.
pub(crate) const MAP_ANY: &str = "dnat_any";
/// Map of ports published on one host address.
pub(crate) const MAP_ADDR: &str = "dnat_addr";

/// One change of a map element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ElementOp {
    /// Adds `key -> value` to `map`.
    Add {
        map: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Removes `key` from `map`; no error when it is not there.
    Remove { map: &'static str, key: Vec<u8> },
}

/// Applies element changes to a table, all or nothing.
pub(crate) trait ElementSink: Send + Sync {
    fn apply(&self, table: &str, ops: &[ElementOp]) -> io::Result<()>;
}

fn proto_number(proto: Proto) -> u8 {
    match proto {
        Proto::Tcp => libc::IPPROTO_TCP as u8,
        Proto::Udp => libc::IPPROTO_UDP as u8,
    }
}

/// A port in a concatenation: network order, padded to a 4-byte register.
fn port_field(port: u16) -> [u8; 4] {
    let [hi, lo] = port.to_be_bytes();
    [hi, lo, 0, 0]
}

/// The map and key a published port lives under.
pub(crate) fn element_key(m: &PortMapping) -> (&'static str, Vec<u8>) {
    let mut key = Vec::with_capacity(12);
    let map = match m.host_ip.filter(|ip| !ip.is_unspecified()) {
        Some(ip) => {
            key.extend(ip.octets());
            MAP_ADDR
        }
        None => MAP_ANY,
    };
    key.extend([proto_number(m.proto), 0, 0, 0]);
    key.extend(port_field(m.host_port));
    (map, key)
}

fn element_value(ip: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut value = ip.octets().to_vec();
    value.extend(port_field(port));
    value
}

/// Removes the elements of `mappings`.
pub(crate) fn remove_ops(mappings: &[PortMapping]) -> Vec<ElementOp> {
    mappings
        .iter()
        .map(|m| {
            let (map, key) = element_key(m);
            ElementOp::Remove { map, key }
        })
        .collect()
}

/// One batch for a connecting container: the leftovers in `stale` and whatever holds its
/// keys go, then its elements sending each host port to `ip`.
pub(crate) fn connect_ops(
    ip: Ipv4Addr,
    mappings: &[PortMapping],
    stale: &[PortMapping],
) -> Vec<ElementOp> {
    let mut ops = remove_ops(stale);
    ops.extend(remove_ops(mappings));
    ops.extend(mappings.iter().map(|m| {
        let (map, key) = element_key(m);
        ElementOp::Add {
            map,
            key,
            value: element_value(ip, m.container_port),
        }
    }));
    ops
}

// Netfilter netlink, as include/uapi/linux/netfilter/{nfnetlink,nf_tables}.h define it.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFT_MSG_DESTROYSETELEM: u16 = 30;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// Netlink messages and attributes appended to one buffer.
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Starts a message: header (length patched by `end_message`) and nfgenmsg.
    fn begin_message(&mut self, kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend(0u32.to_ne_bytes());
        self.buf.extend(kind.to_ne_bytes());
        self.buf.extend(flags.to_ne_bytes());
        self.buf.extend(seq.to_ne_bytes());
        self.buf.extend(0u32.to_ne_bytes());
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend(res_id.to_be_bytes());
        start
    }

    fn end_message(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn attr(&mut self, kind: u16, payload: &[u8]) {
        self.buf.extend(((4 + payload.len()) as u16).to_ne_bytes());
        self.buf.extend(kind.to_ne_bytes());
        self.buf.extend(payload);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    fn string(&mut self, kind: u16, value: &str) {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.attr(kind, &bytes);
    }

    fn begin_nest(&mut self, kind: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend(0u16.to_ne_bytes());
        self.buf.extend((kind | NLA_F_NESTED).to_ne_bytes());
        start
    }

    fn end_nest(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn data(&mut self, kind: u16, value: &[u8]) {
        let nest = self.begin_nest(kind);
        self.attr(NFTA_DATA_VALUE, value);
        self.end_nest(nest);
    }
}

/// How removals are sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RemoveAs {
    Destroy,
    Delete,
}

/// The batch for `ops`: BEGIN, one message per element change (each asking for an ACK, with
/// sequence numbers `first_seq + 1 ..`), END.
fn encode_batch(table: &str, ops: &[ElementOp], first_seq: u32, remove_as: RemoveAs) -> Vec<u8> {
    let mut w = Writer {
        buf: Vec::with_capacity(64 + ops.len() * 96),
    };
    let begin = w.begin_message(
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        first_seq,
        libc::AF_UNSPEC as u8,
        NFNL_SUBSYS_NFTABLES,
    );
    w.end_message(begin);
    for (i, op) in ops.iter().enumerate() {
        let (kind, flags, map, key, value) = match op {
            ElementOp::Add { map, key, value } => {
                (NFT_MSG_NEWSETELEM, NLM_F_CREATE, map, key, Some(value))
            }
            ElementOp::Remove { map, key } => {
                let kind = match remove_as {
                    RemoveAs::Destroy => NFT_MSG_DESTROYSETELEM,
                    RemoveAs::Delete => NFT_MSG_DELSETELEM,
                };
                (kind, 0, map, key, None)
            }
        };
        let msg = w.begin_message(
            (NFNL_SUBSYS_NFTABLES << 8) | kind,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            first_seq + 1 + i as u32,
            libc::AF_INET as u8,
            0,
        );
        w.string(NFTA_SET_ELEM_LIST_TABLE, table);
        w.string(NFTA_SET_ELEM_LIST_SET, map);
        let elements = w.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS);
        let element = w.begin_nest(NFTA_LIST_ELEM);
        w.data(NFTA_SET_ELEM_KEY, key);
        if let Some(value) = value {
            w.data(NFTA_SET_ELEM_DATA, value);
        }
        w.end_nest(element);
        w.end_nest(elements);
        w.end_message(msg);
    }
    let end = w.begin_message(
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        first_seq + 1 + ops.len() as u32,
        libc::AF_UNSPEC as u8,
        NFNL_SUBSYS_NFTABLES,
    );
    w.end_message(end);
    w.buf
}

/// The errors in the kernel's answers to a batch: `(sequence number, errno)` for each
/// NLMSG_ERROR with a non-zero code.
fn parse_errors(data: &[u8]) -> Vec<(u32, i32)> {
    let mut errors = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDRLEN <= data.len() {
        let word = |o: usize| u32::from_ne_bytes(data[o..o + 4].try_into().expect("4 bytes"));
        let len = word(at) as usize;
        let kind = u16::from_ne_bytes([data[at + 4], data[at + 5]]);
        let seq = word(at + 8);
        if len < NLMSG_HDRLEN || at + len > data.len() {
            break;
        }
        if kind == NLMSG_ERROR && len >= NLMSG_HDRLEN + 4 {
            let code = word(at + NLMSG_HDRLEN) as i32;
            if code != 0 {
                errors.push((seq, -code));
            }
        }
        at += align4(len);
    }
    errors
}

/// The process's netfilter netlink socket and its last sequence number. Opened by the first
/// batch and never closed: the kernel's release of a netfilter socket waits for the cleanup
/// of recent transactions (`nft_rcv_nl_event` flushes nf_tables' destroy work, an RCU grace
/// period), which right after a batch costs milliseconds. Left open, it is released when the
/// process exits, where nobody waits for it.
static SOCKET: Mutex<Option<(Socket, u32)>> = Mutex::new(None);

/// The process's netfilter socket (and its last sequence number), opened if need be.
pub(crate) fn open_socket() -> io::Result<std::sync::MutexGuard<'static, Option<(Socket, u32)>>> {
    let mut slot = SOCKET.lock().unwrap_or_else(|e| e.into_inner());
    if slot.is_none() {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind(&SocketAddr::new(0, 0))?;
        *slot = Some((socket, 0));
    }
    Ok(slot)
}

/// The process's netfilter socket, taken out of it: a process about to end hands it to one
/// that ends after it (see [`hand_off_netfilter_socket`](crate::hand_off_netfilter_socket)).
pub(crate) fn take_socket() -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
    let mut slot = SOCKET.lock().unwrap_or_else(|e| e.into_inner());
    let (socket, _) = slot.take()?;
    // SAFETY: the descriptor was the socket's, which gave it up.
    Some(unsafe { OwnedFd::from_raw_fd(socket.into_raw_fd()) })
}

/// Sends element batches to the kernel over the process's netfilter netlink socket.
pub(crate) struct NetlinkSink;

impl NetlinkSink {
    pub(crate) fn new() -> NetlinkSink {
        NetlinkSink
    }

    /// Sends one batch; the first error the kernel reports, if any. The kernel processes a
    /// batch while `send` runs, so every answer is queued when it returns.
    fn send(&self, table: &str, ops: &[ElementOp], remove_as: RemoveAs) -> io::Result<()> {
        let mut slot = open_socket()?;
        let (socket, seq) = slot.as_mut().expect("opened by open_socket");
        let first = seq.wrapping_add(1);
        *seq = first.wrapping_add(ops.len() as u32 + 1);
        let batch = encode_batch(table, ops, first, remove_as);
        tracing::debug!(table, ?ops, "nftables element batch");
        socket.send(&batch, 0)?;
        let mut errors = Vec::new();
        let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
        loop {
            buf.clear();
            match socket.recv(&mut buf, libc::MSG_DONTWAIT) {
                Ok(_) => errors.extend(
                    parse_errors(&buf)
                        .into_iter()
                        .filter(|(s, _)| s.wrapping_sub(first) <= ops.len() as u32),
                ),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        match errors.first() {
            None => Ok(()),
            Some(&(seq, errno)) => {
                let what = match seq.wrapping_sub(first).checked_sub(1) {
                    Some(i) if (i as usize) < ops.len() => format!("{:?}", ops[i as usize]),
                    _ => "commit".to_string(),
                };
                let e = io::Error::from_raw_os_error(errno);
                Err(io::Error::new(e.kind(), format!("{what}: {e}")))
            }
        }
    }
}

impl ElementSink for NetlinkSink {
    fn apply(&self, table: &str, ops: &[ElementOp]) -> io::Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        match self.send(table, ops, RemoveAs::Destroy) {
            // A kernel without NFT_MSG_DESTROYSETELEM (before 6.3).
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP))
                    || e.to_string().contains("Operation not supported") =>
            {
                tracing::debug!("no NFT_MSG_DESTROYSETELEM: removing elements one by one");
                for op in ops
                    .iter()
                    .filter(|op| matches!(op, ElementOp::Remove { .. }))
                {
                    match self.send(table, std::slice::from_ref(op), RemoveAs::Delete) {
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        other => other?,
                    }
                }
                let adds: Vec<ElementOp> = ops
                    .iter()
                    .filter(|op| matches!(op, ElementOp::Add { .. }))
                    .cloned()
                    .collect();
                if adds.is_empty() {
                    return Ok(());
                }
                self.send(table, &adds, RemoveAs::Delete)
            }
            other => other,
        }
    }
}

/// Records every batch; fails (without recording) while `fail_with` holds an errno.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Recorder {
    pub batches: Mutex<Vec<(String, Vec<ElementOp>)>>,
    pub fail_with: Mutex<Option<i32>>,
}

#[cfg(test)]
impl ElementSink for std::sync::Arc<Recorder> {
    fn apply(&self, table: &str, ops: &[ElementOp]) -> io::Result<()> {
        if let Some(errno) = *self.fail_with.lock().unwrap() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.batches
            .lock()
            .unwrap()
            .push((table.to_string(), ops.to_vec()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(host_ip: Option<&str>, host_port: u16, port: u16, proto: Proto) -> PortMapping {
        PortMapping {
            host_ip: host_ip.map(|ip| ip.parse().unwrap()),
            host_port,
            container_port: port,
            proto,
        }
    }

    #[test]
    fn keys_are_register_padded_concatenations_in_network_order() {
        let (map, key) = element_key(&mapping(None, 8080, 80, Proto::Tcp));
        assert_eq!(map, MAP_ANY);
        assert_eq!(key, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        // 0.0.0.0 is every address, as no address.
        assert_eq!(
            element_key(&mapping(Some("0.0.0.0"), 8080, 80, Proto::Tcp)),
            (MAP_ANY, key)
        );
        let (map, key) = element_key(&mapping(Some("127.0.0.1"), 5353, 53, Proto::Udp));
        assert_eq!(map, MAP_ADDR);
        assert_eq!(key, [127, 0, 0, 1, 17, 0, 0, 0, 0x14, 0xe9, 0, 0]);
    }

    #[test]
    fn connect_removes_leftovers_and_its_keys_before_adding() {
        let ours = [
            mapping(None, 49153, 80, Proto::Tcp),
            mapping(Some("127.0.0.1"), 5353, 53, Proto::Udp),
        ];
        let stale = [mapping(None, 49999, 22, Proto::Tcp)];
        let ops = connect_ops("10.0.0.2".parse().unwrap(), &ours, &stale);
        assert_eq!(ops.len(), 5);
        assert_eq!(
            ops[0],
            ElementOp::Remove {
                map: MAP_ANY,
                key: element_key(&stale[0]).1
            }
        );
        assert!(matches!(ops[1], ElementOp::Remove { map: MAP_ANY, .. }));
        assert!(matches!(ops[2], ElementOp::Remove { map: MAP_ADDR, .. }));
        assert_eq!(
            ops[3],
            ElementOp::Add {
                map: MAP_ANY,
                key: element_key(&ours[0]).1,
                value: vec![10, 0, 0, 2, 0, 80, 0, 0],
            }
        );
        assert_eq!(
            ops[4],
            ElementOp::Add {
                map: MAP_ADDR,
                key: element_key(&ours[1]).1,
                value: vec![10, 0, 0, 2, 0, 53, 0, 0],
            }
        );
        assert_eq!(remove_ops(&ours), ops[1..3]);
        assert!(connect_ops("10.0.0.2".parse().unwrap(), &[], &[]).is_empty());
    }

    /// Walks the messages of a batch: (type, flags, seq, payload after the nfgenmsg).
    fn messages(buf: &[u8]) -> Vec<(u16, u16, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < buf.len() {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
            let flags = u16::from_ne_bytes([buf[at + 6], buf[at + 7]]);
            let seq = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().unwrap());
            out.push((kind, flags, seq, buf[at + 20..at + len].to_vec()));
            at += align4(len);
        }
        assert_eq!(at, buf.len());
        out
    }

    #[test]
    fn a_batch_is_begin_one_acked_message_per_change_and_end() {
        let ops = connect_ops(
            "10.0.0.2".parse().unwrap(),
            &[mapping(None, 8080, 80, Proto::Tcp)],
            &[],
        );
        let buf = encode_batch("dock-t", &ops, 41, RemoveAs::Destroy);
        let msgs = messages(&buf);
        assert_eq!(msgs.len(), 4);
        assert_eq!((msgs[0].0, msgs[0].2), (NFNL_MSG_BATCH_BEGIN, 41));
        assert_eq!(
            (msgs[1].0, msgs[1].1, msgs[1].2),
            (
                0x0a00 | NFT_MSG_DESTROYSETELEM,
                NLM_F_REQUEST | NLM_F_ACK,
                42
            )
        );
        assert_eq!(
            (msgs[2].0, msgs[2].1, msgs[2].2),
            (
                0x0a00 | NFT_MSG_NEWSETELEM,
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
                43
            )
        );
        assert_eq!((msgs[3].0, msgs[3].2), (NFNL_MSG_BATCH_END, 44));
        // table "dock-t\0" (4 + 7, padded to 12), then the map name.
        let add = &msgs[2].3;
        assert_eq!(&add[..4], &[11, 0, 1, 0]);
        assert_eq!(&add[4..11], b"dock-t\0");
        assert_eq!(&add[16..25], b"dnat_any\0");
        // The key and the value, each an NFTA_DATA_VALUE of 8 bytes in its nest.
        let tail = &add[add.len() - 2 * 16..];
        assert_eq!(&tail[4..8], &[12, 0, 1, 0]);
        assert_eq!(&tail[8..16], &[6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(&tail[20..24], &[12, 0, 1, 0]);
        assert_eq!(&tail[24..32], &[10, 0, 0, 2, 0, 80, 0, 0]);
        let deleting = encode_batch("dock-t", &ops, 1, RemoveAs::Delete);
        assert_eq!(messages(&deleting)[1].0, 0x0a00 | NFT_MSG_DELSETELEM);
    }

    #[test]
    fn errors_name_their_sequence_numbers() {
        let mut answer = Vec::new();
        for (seq, code) in [(5u32, 0i32), (6, -libc::ENOENT)] {
            answer.extend(36u32.to_ne_bytes());
            answer.extend(NLMSG_ERROR.to_ne_bytes());
            answer.extend(0u16.to_ne_bytes());
            answer.extend(seq.to_ne_bytes());
            answer.extend(0u32.to_ne_bytes());
            answer.extend(code.to_ne_bytes());
            answer.extend([0u8; 16]);
        }
        assert_eq!(parse_errors(&answer), vec![(6, libc::ENOENT)]);
    }

    #[test]
    fn the_recorder_records_or_fails() {
        let recorder = std::sync::Arc::new(Recorder::default());
        let ops = remove_ops(&[mapping(None, 1, 1, Proto::Tcp)]);
        recorder.apply("t", &ops).unwrap();
        *recorder.fail_with.lock().unwrap() = Some(libc::ENOENT);
        assert!(recorder.apply("t", &ops).is_err());
        assert_eq!(recorder.batches.lock().unwrap().len(), 1);
    }
}
