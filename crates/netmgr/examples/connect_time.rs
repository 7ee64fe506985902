//! Times `Network::connect` + `Network::release` of a process in a new network namespace,
//! without ports, with one UDP port and with one TCP port (which also attaches the loopback
//! redirect), ROUNDS times each in turn; prints the medians. Needs root; uses a bridge, table
//! and state dir of its own and removes them.
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(30);
    let state = std::env::temp_dir().join(format!("netmgr-connect-time-{}", std::process::id()));
    let cfg = netmgr::NetConfig::new(
        "dkbench0",
        "10.251.77.0/24".parse().unwrap(),
        "dkbench",
        &state,
    );
    let net = netmgr::Network::open(cfg).expect("open network (needs root)");
    let mut child = Command::new("unshare")
        .args(["--net", "sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .expect("unshare");
    // Wait until the child is in its own namespace.
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    while std::fs::read_link(format!("/proc/{}/ns/net", child.id())).ok() == Some(own.clone()) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let kinds: [(&str, Vec<netmgr::PortSpec>); 3] = [
        ("no port", vec![]),
        ("-p 80/udp", vec!["80/udp".parse().unwrap()]),
        ("-p 80", vec!["80".parse().unwrap()]),
    ];
    let mut times = vec![(Vec::new(), Vec::new()); kinds.len()];
    for round in 0..rounds {
        for (i, (_, ports)) in kinds.iter().enumerate() {
            let id = format!("bench{round}x{i}");
            let start = Instant::now();
            net.connect(&id, child.id() as i32, ports).expect("connect");
            let connected = Instant::now();
            net.disconnect(&id).expect("disconnect");
            times[i].0.push(connected - start);
            times[i].1.push(connected.elapsed());
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    net.destroy().expect("destroy");
    let _ = std::fs::remove_dir_all(&state);
    let median = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1000.0
    };
    for ((name, _), (connect, release)) in kinds.iter().zip(times.iter_mut()) {
        println!(
            "{name:10} connect {:6.3} ms   disconnect {:6.3} ms",
            median(connect),
            median(release)
        );
    }
}
