//! One full e-sticker encode (inventory, TID, passwords, EPC, user memory, read-back, lock) against
//! the simulator (timing 0) over a real PTY: bytes each way, round trips, the time those bytes need
//! on a 115200-baud 8N1 line, and our wall time. Over a PTY the line costs nothing, so the wall time
//! is the software overhead (driver, codec, simulator, kernel); target: under 5 % of the wire time.

#[path = "../tests/mercury_pty/mod.rs"]
mod mercury_pty;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use mtu::devices::mercury::{MercuryEncoder, TagProfile, TagSecret};
use mtu::devices::rfid::TagData;
use mtu::devices::transport::CountingLink;

const BAUD: f64 = 115_200.0;
const ITERATIONS: usize = 100;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_path = dir.path().join("secret");
    std::fs::write(&secret_path, "000102030405060708090a0b0c0d0e0f").expect("secret");
    std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let options: toml::Table =
        format!("password_file = {:?}", secret_path.to_str().expect("utf-8 path")).parse().expect("options");
    let data = TagData { epc: hex::decode("3034257BF400B7800004CB2F").expect("hex"), user: vec![0x5A; 64] };

    let mut walls = Vec::new();
    let mut last = None;
    for _ in 0..ITERATIONS {
        let sim = mtu::sim::rfid::simulator(&"timing_scale = 0".parse().expect("sim options")).expect("sim");
        let (link, _served) = mercury_pty::serve(sim);
        let link = CountingLink::new(Box::new(link));
        let counts = link.counts();
        let profile = TagProfile::from_options(&options).expect("profile");
        let secret = TagSecret::load(&profile.password_file).expect("secret");
        let mut enc = MercuryEncoder::new(Box::new(link), profile, secret, Duration::from_millis(500));
        enc.start().expect("start");
        let before = counts.snapshot();
        let t0 = Instant::now();
        enc.encode_tag(&data).expect("encode");
        walls.push(t0.elapsed());
        let tally = counts.snapshot().since(before);
        last = Some((tally.bytes_out, tally.bytes_in, tally.turnarounds));
    }
    let Some((out, inn, trips)) = last else { return };
    walls.sort();
    let median = walls[walls.len() / 2];
    let wire = Duration::from_secs_f64((out + inn) as f64 * 10.0 / BAUD);
    let ratio = median.as_secs_f64() / wire.as_secs_f64() * 100.0;
    println!("wire_mercury: one full tag encode (12-byte EPC, 64 bytes user memory), timing 0, PTY");
    println!("  host -> module : {out} bytes");
    println!("  module -> host : {inn} bytes");
    println!("  round trips    : {trips}");
    println!("  wire time      : {:.2} ms at 115200 baud 8N1", wire.as_secs_f64() * 1000.0);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  wall time      : median {:.3} ms, p10 {:.3} ms, p90 {:.3} ms, min {:.3} ms over {ITERATIONS} runs",
        ms(median),
        ms(walls[walls.len() / 10]),
        ms(walls[walls.len() * 9 / 10]),
        ms(walls[0]),
    );
    println!("  (wall time includes scheduling delays when other work loads the machine)");
    println!(
        "  overhead       : {ratio:.2} % of wire time (target < 5 %): {}",
        if ratio < 5.0 { "met" } else { "NOT met" }
    );
}
