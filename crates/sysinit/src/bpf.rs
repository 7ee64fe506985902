//! Classic BPF as seccomp runs it: an interpreter ([`run`]) and one rewrite ([`shorten`]) of
//! the programs libseccomp writes.
//!
//! libseccomp dispatches on the system call number with one `jeq` per call: Docker's default
//! profile becomes two chains of about 300 (x86_64 and x86). The kernel translates and
//! JIT-compiles a filter when it is installed, at about a microsecond per instruction on the
//! development machine, and walks the chain on every system call. [`shorten`] replaces each
//! such chain by a binary search over the ranges of values that go to the same place, and
//! keeps the result only when the interpreter finds it deciding like the original on every
//! system call number, architecture and argument value the program names.

use std::collections::BTreeSet;

use libc::sock_filter;

// Instruction classes, sizes, modes and operations (linux/filter.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const K: u16 = 0x00;
const X: u16 = 0x08;
const A: u16 = 0x10;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGT: u16 = 0x20;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;
const TAX: u16 = 0x00;
const TXA: u16 = 0x80;

/// `sizeof(struct seccomp_data)`: nr, arch, instruction_pointer, args[6].
pub const DATA_LEN: usize = 64;

/// The input of one run, laid out as `struct seccomp_data` in native byte order.
pub fn seccomp_data(nr: u32, arch: u32, args: [u64; 6]) -> [u8; DATA_LEN] {
    let mut data = [0u8; DATA_LEN];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, arg) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
    }
    data
}

/// What a run decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The `SECCOMP_RET_*` value returned.
    pub ret: u32,
    /// Whether the run read a system call argument on its way.
    pub read_args: bool,
}

/// Runs `prog` on `data` as the kernel would; `None` for what seccomp would not load (an
/// unknown instruction, a load outside the data, a jump past the end).
pub fn run(prog: &[sock_filter], data: &[u8; DATA_LEN]) -> Option<Outcome> {
    let (mut a, mut x) = (0u32, 0u32);
    let mut scratch = [0u32; 16];
    let mut read_args = false;
    let mut pc = 0usize;
    // Every jump goes forward, so this ends.
    loop {
        let ins = prog.get(pc)?;
        let k = ins.k;
        pc += 1;
        match ins.code {
            c if c == LD | W | ABS => {
                let at = k as usize;
                if !at.is_multiple_of(4) || at + 4 > DATA_LEN {
                    return None;
                }
                read_args |= at >= 16;
                a = u32::from_ne_bytes(data[at..at + 4].try_into().ok()?);
            }
            c if c == LD | W | LEN => a = DATA_LEN as u32,
            c if c == LDX | W | LEN => x = DATA_LEN as u32,
            c if c == LD | IMM => a = k,
            c if c == LDX | IMM => x = k,
            c if c == LD | MEM => a = *scratch.get(k as usize)?,
            c if c == LDX | MEM => x = *scratch.get(k as usize)?,
            ST => *scratch.get_mut(k as usize)? = a,
            STX => *scratch.get_mut(k as usize)? = x,
            c if c & 0x07 == ALU => {
                let src = if c & X != 0 { x } else { k };
                a = match c & 0xf0 {
                    0x00 => a.wrapping_add(src),
                    0x10 => a.wrapping_sub(src),
                    0x20 => a.wrapping_mul(src),
                    // Classic BPF returns 0 from the program on a division by zero.
                    0x30 | 0x90 if src == 0 => {
                        return Some(Outcome { ret: 0, read_args });
                    }
                    0x30 => a / src,
                    0x90 => a % src,
                    0x40 => a | src,
                    0x50 => a & src,
                    0x60 => a.checked_shl(src)?,
                    0x70 => a.checked_shr(src)?,
                    0x80 => a.wrapping_neg(),
                    0xa0 => a ^ src,
                    _ => return None,
                };
            }
            c if c & 0x07 == JMP => {
                if c & 0xf0 == JA {
                    pc = pc.checked_add(k as usize)?;
                    continue;
                }
                let src = if c & X != 0 { x } else { k };
                let taken = match c & 0xf0 {
                    JEQ => a == src,
                    JGT => a > src,
                    JGE => a >= src,
                    JSET => a & src != 0,
                    _ => return None,
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
            c if c == RET | K => return Some(Outcome { ret: k, read_args }),
            c if c == RET | A => return Some(Outcome { ret: a, read_args }),
            c if c == MISC | TAX => x = a,
            c if c == MISC | TXA => a = x,
            _ => return None,
        }
    }
}

fn is_jeq_k(ins: &sock_filter) -> bool {
    ins.code == JMP | JEQ | K
}

fn is_jump(ins: &sock_filter) -> bool {
    ins.code & 0x07 == JMP
}

/// Where control may go after instruction `i`; `None` past the end.
fn successors(prog: &[sock_filter], i: usize) -> Option<Vec<usize>> {
    let ins = &prog[i];
    let next = i + 1;
    let targets = match ins.code & 0x07 {
        JMP if ins.code & 0xf0 == JA => vec![next + ins.k as usize],
        JMP => vec![next + usize::from(ins.jt), next + usize::from(ins.jf)],
        RET => Vec::new(),
        _ => vec![next],
    };
    targets.iter().all(|t| *t < prog.len()).then_some(targets)
}

/// Where a jump to `i` ends up deciding: a `ret` of a constant is the same wherever it
/// stands, and a `ja` is where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    Ret(u32),
    At(usize),
}

fn meaning(prog: &[sock_filter], mut i: usize) -> Meaning {
    while prog[i].code == JMP | JA {
        i += 1 + prog[i].k as usize;
    }
    if prog[i].code == RET | K {
        Meaning::Ret(prog[i].k)
    } else {
        Meaning::At(i)
    }
}

/// A run of `jeq` instructions, each falling to the next when it does not match and none
/// reached from anywhere else: `value == key` goes to the first matching key's target, any
/// other value to `default`.
struct Chain {
    members: Vec<usize>,
    /// Consecutive ranges of values, from 0 up, and where each goes.
    pieces: Vec<(u32, Meaning)>,
    /// Where the pieces go, in order of first use: the block's trailing `ret`s and `ja`s.
    exits: Vec<Meaning>,
}

impl Chain {
    fn find(prog: &[sock_filter], head: usize, taken: &[bool], indegree: &[u32]) -> Chain {
        let mut members = vec![head];
        let mut cur = head;
        loop {
            let next = cur + 1 + usize::from(prog[cur].jf);
            let joins = is_jeq_k(&prog[next])
                && !taken[next]
                && indegree[next] == 1
                && cur + 1 + usize::from(prog[cur].jt) != next;
            if !joins {
                break;
            }
            members.push(next);
            cur = next;
        }
        let default = meaning(prog, cur + 1 + usize::from(prog[cur].jf));
        let mut keys = BTreeSet::new();
        let mut entries: Vec<(u32, Meaning)> = members
            .iter()
            .filter(|m| keys.insert(prog[**m].k))
            .map(|m| (prog[*m].k, meaning(prog, m + 1 + usize::from(prog[*m].jt))))
            .collect();
        entries.sort_by_key(|(key, _)| *key);
        let mut pieces: Vec<(u32, Meaning)> = Vec::new();
        let mut push = |lo: u32, to: Meaning| match pieces.last() {
            Some((_, last)) if *last == to => {}
            _ => pieces.push((lo, to)),
        };
        let mut uncovered = 0u64;
        for (key, to) in entries {
            if u64::from(key) > uncovered {
                push(uncovered as u32, default);
            }
            push(key, to);
            uncovered = u64::from(key) + 1;
        }
        if uncovered <= u64::from(u32::MAX) {
            push(uncovered as u32, default);
        }
        let mut exits = Vec::new();
        for (_, to) in &pieces {
            if !exits.contains(to) {
                exits.push(*to);
            }
        }
        Chain {
            members,
            pieces,
            exits,
        }
    }

    /// Instructions of the search that replaces the chain: one `jge` per boundary, then the
    /// exits.
    fn replacement_len(&self) -> usize {
        self.pieces.len() - 1 + self.exits.len()
    }
}

/// One instruction of the rewritten program, its jumps still by name.
#[derive(Debug, Clone, Copy)]
enum Item {
    /// Instruction `i` of the original program.
    Original(usize),
    /// `jge k`: to item `yes` when the value is at least `k`, else to item `no`.
    Node {
        k: u32,
        yes: usize,
        no: usize,
    },
    /// An exit of a search: `ret k`, or `ja` to original instruction `i`.
    Ret(u32),
    Goto(usize),
}

/// `prog` with every `jeq` chain worth it replaced by a binary search, or `None` when
/// nothing gets shorter or the result does not decide exactly like `prog` (see
/// [`decides_alike`]).
pub fn shorten(prog: &[sock_filter]) -> Option<Vec<sock_filter>> {
    let n = prog.len();
    let mut indegree = vec![0u32; n];
    for i in 0..n {
        for t in successors(prog, i)? {
            indegree[t] += 1;
        }
    }
    // Chains by their head; members other than heads are dropped.
    let mut taken = vec![false; n];
    let mut chains: Vec<Option<Chain>> = (0..n).map(|_| None).collect();
    for head in 0..n {
        if !is_jeq_k(&prog[head]) || taken[head] {
            continue;
        }
        let chain = Chain::find(prog, head, &taken, &indegree);
        if chain.replacement_len() < chain.members.len() {
            for m in &chain.members {
                taken[*m] = true;
            }
            chains[head] = Some(chain);
        }
    }
    if chains.iter().all(Option::is_none) {
        return None;
    }

    // Lay out: each original instruction where it was, a chain's search where its head was.
    let mut items: Vec<Item> = Vec::new();
    let mut at = vec![usize::MAX; n];
    for i in 0..n {
        match &chains[i] {
            Some(chain) => {
                at[i] = items.len();
                lay_out_search(chain, &mut items);
            }
            None if !taken[i] => {
                at[i] = items.len();
                items.push(Item::Original(i));
            }
            None => {}
        }
    }

    let offset = |from: usize, to: usize| -> Option<usize> { to.checked_sub(from + 1) };
    let short = |from: usize, to: usize| -> Option<u8> { u8::try_from(offset(from, to)?).ok() };
    let mut out = Vec::with_capacity(items.len());
    for (pos, item) in items.iter().enumerate() {
        let ins = match *item {
            Item::Original(i) => {
                let mut ins = prog[i];
                if is_jump(&ins) {
                    let target = |skip: usize| at[i + 1 + skip];
                    if ins.code & 0xf0 == JA {
                        ins.k = u32::try_from(offset(pos, target(ins.k as usize))?).ok()?;
                    } else {
                        ins.jt = short(pos, target(usize::from(ins.jt)))?;
                        ins.jf = short(pos, target(usize::from(ins.jf)))?;
                    }
                } else if ins.code & 0x07 != RET && at[i + 1] != pos + 1 {
                    // Falls through: its successor must still follow it.
                    return None;
                }
                ins
            }
            Item::Node { k, yes, no } => sock_filter {
                code: JMP | JGE | K,
                jt: short(pos, yes)?,
                jf: short(pos, no)?,
                k,
            },
            Item::Ret(k) => sock_filter {
                code: RET | K,
                jt: 0,
                jf: 0,
                k,
            },
            Item::Goto(i) => sock_filter {
                code: JMP | JA,
                jt: 0,
                jf: 0,
                k: u32::try_from(offset(pos, at[i])?).ok()?,
            },
        };
        out.push(ins);
    }
    if !decides_alike(prog, &out) {
        tracing::debug!("shortened seccomp program decides differently: the original is kept");
        return None;
    }
    Some(out)
}

/// Appends the search for `chain`: its `jge` nodes in preorder (every jump forward), then its
/// exits.
fn lay_out_search(chain: &Chain, items: &mut Vec<Item>) {
    let nodes = chain.pieces.len() - 1;
    let first_exit = items.len() + nodes;
    let exit_of = |to: &Meaning| first_exit + chain.exits.iter().position(|e| e == to).unwrap_or(0);
    fn node(
        chain: &Chain,
        items: &mut Vec<Item>,
        lo: usize,
        hi: usize,
        exit_of: &dyn Fn(&Meaning) -> usize,
    ) -> usize {
        if lo == hi {
            return exit_of(&chain.pieces[lo].1);
        }
        let mid = (lo + hi).div_ceil(2);
        let me = items.len();
        items.push(Item::Ret(0));
        let no = node(chain, items, lo, mid - 1, exit_of);
        let yes = node(chain, items, mid, hi, exit_of);
        items[me] = Item::Node {
            k: chain.pieces[mid].0,
            yes,
            no,
        };
        me
    }
    node(chain, items, 0, chain.pieces.len() - 1, &exit_of);
    for exit in &chain.exits {
        items.push(match *exit {
            Meaning::Ret(k) => Item::Ret(k),
            Meaning::At(i) => Item::Goto(i),
        });
    }
}

/// Whether `a` and `b` return the same for every system call number up to 1024, every number
/// the programs compare with (and its neighbours) and the x32 numbers, under every
/// architecture the programs name; and, where a run reads arguments, for every argument
/// value the programs compare with.
pub fn decides_alike(a: &[sock_filter], b: &[sock_filter]) -> bool {
    let constants: BTreeSet<u32> = a.iter().filter(|i| is_jump(i)).map(|i| i.k).collect();
    let architectures: Vec<u32> = compared_after_load(a, |offset| offset == 4)
        .into_iter()
        .chain([0])
        .collect();
    let mut numbers: BTreeSet<u32> = (0..1024).chain(0x4000_0000..0x4000_0400).collect();
    for c in &constants {
        numbers.extend([c.wrapping_sub(1), *c, c.wrapping_add(1)]);
    }
    numbers.extend([u32::MAX, 0x7fff_ffff, 0x8000_0000]);
    let mut arg_values: BTreeSet<u64> = [0, 1, u64::MAX, 1 << 32].into_iter().collect();
    for c in compared_after_load(a, |offset| offset >= 16) {
        for v in [c.wrapping_sub(1), c, c.wrapping_add(1)] {
            arg_values.extend([
                u64::from(v),
                u64::from(v) << 32,
                u64::from(v) * 0x1_0000_0001,
            ]);
        }
    }
    for &arch in &architectures {
        for &nr in &numbers {
            let plain = seccomp_data(nr, arch, [0; 6]);
            let (Some(x), Some(y)) = (run(a, &plain), run(b, &plain)) else {
                return false;
            };
            if x.ret != y.ret {
                return false;
            }
            if !x.read_args && !y.read_args {
                continue;
            }
            for &v in &arg_values {
                for args in (0..6).map(|i| {
                    let mut args = [0; 6];
                    args[i] = v;
                    args
                }) {
                    let data = seccomp_data(nr, arch, args);
                    if run(a, &data).map(|o| o.ret) != run(b, &data).map(|o| o.ret) {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// The constants `prog` compares or masks a field of `struct seccomp_data` with (the
/// architecture: offset 4; an argument: 16 and up): those of jumps and ALU instructions that
/// the accumulator reaches holding that field, along every path (jumps only go forward, so one
/// pass in order sees every predecessor first).
pub(crate) fn compared_after_load(
    prog: &[sock_filter],
    field: impl Fn(u32) -> bool,
) -> BTreeSet<u32> {
    let mut constants = BTreeSet::new();
    let mut holds_field = vec![false; prog.len()];
    for (i, ins) in prog.iter().enumerate() {
        let holds = match ins.code & 0x07 {
            LD => ins.code == LD | W | ABS && field(ins.k),
            JMP | ALU => {
                if holds_field[i] && ins.code & X == 0 && ins.code != JMP | JA {
                    constants.insert(ins.k);
                }
                holds_field[i]
            }
            _ => holds_field[i],
        };
        for next in successors(prog, i).unwrap_or_default() {
            holds_field[next] |= holds;
        }
    }
    constants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
        sock_filter { code, jt, jf, k }
    }
    const ALLOW: u32 = 0x7fff_0000;
    const EPERM: u32 = 0x0005_0001;

    fn ret_of(prog: &[sock_filter], nr: u32) -> u32 {
        run(prog, &seccomp_data(nr, 0, [0; 6])).unwrap().ret
    }

    /// `ld nr`, then a `jeq` per key to `ret ALLOW`, default `ret EPERM`.
    fn chain_program(keys: &[u32]) -> Vec<sock_filter> {
        let n = keys.len();
        let mut prog = vec![ins(LD | W | ABS, 0, 0, 0)];
        for (i, key) in keys.iter().enumerate() {
            // To the ALLOW after the EPERM at the end.
            prog.push(ins(JMP | JEQ | K, (n - i) as u8, 0, *key));
        }
        prog.push(ins(RET | K, 0, 0, EPERM));
        prog.push(ins(RET | K, 0, 0, ALLOW));
        prog
    }

    #[test]
    fn the_interpreter_runs_what_seccomp_runs() {
        let prog = [
            ins(LD | W | ABS, 0, 0, 20),  // args[0] high half
            ins(ST, 0, 0, 3),             // M[3] = A
            ins(LD | IMM, 0, 0, 7),       // A = 7
            ins(ALU | 0x20 | K, 0, 0, 6), // A *= 6
            ins(MISC | TAX, 0, 0, 0),     // X = 42
            ins(LD | MEM, 0, 0, 3),       // A = M[3]
            ins(JMP | JEQ | X, 0, 1, 0),  // A == 42 ?
            ins(RET | A, 0, 0, 0),        // return 42
            ins(RET | K, 0, 0, 1),
        ];
        let high = run(&prog, &seccomp_data(0, 0, [42 << 32, 0, 0, 0, 0, 0])).unwrap();
        assert_eq!(
            high,
            Outcome {
                ret: 42,
                read_args: true
            }
        );
        assert_eq!(
            run(&prog, &seccomp_data(0, 0, [42, 0, 0, 0, 0, 0]))
                .unwrap()
                .ret,
            1
        );
        // Division by zero returns 0; a load past the data and a jump past the end are refused.
        let div = [
            ins(LDX | IMM, 0, 0, 0),
            ins(ALU | 0x30 | X, 0, 0, 0),
            ins(RET | K, 0, 0, 9),
        ];
        assert_eq!(run(&div, &seccomp_data(0, 0, [0; 6])).unwrap().ret, 0);
        assert_eq!(run(&[ins(LD | W | ABS, 0, 0, 64)], &[0; DATA_LEN]), None);
        assert_eq!(run(&[ins(JMP | JA, 0, 0, 5)], &[0; DATA_LEN]), None);
    }

    #[test]
    fn a_chain_becomes_a_search_that_decides_alike() {
        // 0..40 but 7, 8 and 30, and some far-off numbers, the first key repeated.
        let mut keys: Vec<u32> = (0..40).filter(|k| ![7, 8, 30].contains(k)).collect();
        keys.extend([5, 1000, 1001, 0x4000_0000, u32::MAX]);
        let prog = chain_program(&keys);
        let short = shorten(&prog).expect("shorter");
        assert!(
            short.len() * 3 <= prog.len(),
            "{} of {}",
            short.len(),
            prog.len()
        );
        for nr in (0..1100).chain([
            0x3fff_ffff,
            0x4000_0000,
            0x4000_0001,
            u32::MAX - 1,
            u32::MAX,
        ]) {
            assert_eq!(ret_of(&short, nr), ret_of(&prog, nr), "nr {nr}");
        }
    }

    #[test]
    fn a_chain_not_worth_it_stays() {
        // Three scattered keys: the search would not be shorter.
        assert_eq!(shorten(&chain_program(&[3, 10, 20])), None);
    }

    /// A chain that another jump enters halfway is cut there: both halves become searches,
    /// and the jump still lands where it did.
    #[test]
    fn a_chain_entered_midway_is_cut_there() {
        // arch 1 enters the chain at its jeq of key 15; any other arch at its head.
        let mut prog = vec![
            ins(LD | W | ABS, 0, 0, 4),  // 0: arch
            ins(JMP | JEQ | K, 1, 0, 1), // 1: arch 1 -> 3, else -> 2
            ins(JMP | JA, 0, 0, 2),      // 2: -> 5, the chain's `ld nr`
            ins(LD | W | ABS, 0, 0, 0),  // 3: nr
            ins(JMP | JA, 0, 0, 16),     // 4: -> 21, the jeq of key 15
        ];
        prog.extend(chain_program(&(0..30).collect::<Vec<u32>>()));
        assert_eq!(prog[21].k, 15);
        let short = shorten(&prog).expect("both halves are worth a search");
        assert!(
            short.len() < prog.len() / 2,
            "{} of {}",
            short.len(),
            prog.len()
        );
        for arch in [0, 1, 2] {
            for nr in 0..40 {
                let data = seccomp_data(nr, arch, [0; 6]);
                assert_eq!(run(&short, &data), run(&prog, &data), "arch {arch} nr {nr}");
            }
        }
        // Entered at key 15, keys below it are not matched any more.
        assert_eq!(run(&prog, &seccomp_data(3, 1, [0; 6])).unwrap().ret, EPERM);
        assert_eq!(run(&prog, &seccomp_data(20, 1, [0; 6])).unwrap().ret, ALLOW);
    }

    /// The first of two jeq of one key decides, as in the chain.
    #[test]
    fn the_first_match_of_a_repeated_key_decides() {
        const ENOSYS: u32 = 0x0005_0026;
        // ld nr; jeq k -> ALLOW for 0..20; jeq 7 -> ENOSYS; ret EPERM; ret ALLOW; ret ENOSYS
        let n = 21;
        let mut prog = vec![ins(LD | W | ABS, 0, 0, 0)];
        for (i, key) in (0..20u32).enumerate() {
            prog.push(ins(JMP | JEQ | K, (n - i) as u8, 0, key));
        }
        prog.push(ins(JMP | JEQ | K, 2, 0, 7));
        prog.push(ins(RET | K, 0, 0, EPERM));
        prog.push(ins(RET | K, 0, 0, ALLOW));
        prog.push(ins(RET | K, 0, 0, ENOSYS));
        assert_eq!(ret_of(&prog, 7), ALLOW);
        let short = shorten(&prog).unwrap();
        for nr in 0..30 {
            assert_eq!(ret_of(&short, nr), ret_of(&prog, nr), "nr {nr}");
        }
    }

    #[test]
    fn a_program_that_differs_is_told_apart() {
        let keys: Vec<u32> = (0..20).collect();
        let prog = chain_program(&keys);
        let mut other = shorten(&prog).unwrap();
        // Turn the first boundary one up: 1 more or less allowed.
        let node = other.iter_mut().find(|i| i.code == JMP | JGE | K).unwrap();
        node.k += 1;
        assert!(!decides_alike(&prog, &other));
    }
}
