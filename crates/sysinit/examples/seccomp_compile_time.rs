//! How long compiling Docker's default seccomp profile takes (parse, evaluate, libseccomp
//! compile and export), against reading a cached program back: `cargo run --release
//! --example seccomp_compile_time`. bench/start.sh runs it.

use std::time::Instant;

use sysinit::seccomp::{self, Profile, Program, Target};

fn main() {
    let runs = 50;
    let target = Target::host(sysinit::caps::DEFAULT);
    let mut parse = 0.0;
    let mut compile = 0.0;
    let mut bytes = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let filter = Profile::parse(seccomp::DEFAULT_PROFILE)
            .and_then(|p| p.resolve(&target))
            .expect("default profile")
            .expect("a filter");
        let parsed = Instant::now();
        let program = filter.compile().expect("compiles");
        parse += (parsed - start).as_secs_f64();
        compile += parsed.elapsed().as_secs_f64();
        bytes = program.to_bytes();
    }
    let start = Instant::now();
    for _ in 0..runs {
        Program::from_bytes(&bytes).expect("round trip");
    }
    let decode = start.elapsed().as_secs_f64();
    let ms = |total: f64| total * 1000.0 / runs as f64;
    println!(
        "seccomp default profile: parse+evaluate {:.3} ms, compile {:.3} ms, decode cached {:.4} ms ({} instructions)",
        ms(parse),
        ms(compile),
        ms(decode),
        (bytes.len() - 4) / 8
    );
}
