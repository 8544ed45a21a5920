#![no_main]
//! Driver options (`[devices.X.options]`) must be refused with an error, never a panic, whatever
//! their keys and values: read through the whole configuration (with lines and keys) and through
//! each driver's own reader.
use libfuzzer_sys::fuzz_target;

const HEAD: &str = "mode = \"simulation\"\n[van]\nid = \"MTU-1\"\n[paths]\nstate_dir = \"var\"\n";

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else { return };
    for (device, driver) in [("payment", "zvt"), ("card", "evolis"), ("sticker", "zpl"), ("rfid", "mercury")] {
        let text = format!(
            "{HEAD}[devices.{device}]\ndriver = \"{driver}\"\npath = \"/dev/x\"\nbaud = 9600\n\
             [devices.{device}.options]\n{body}\n"
        );
        let _ = mtu::config::Config::parse(&text, "fuzz.toml");
    }
    if let Ok(table) = body.parse::<toml::Table>() {
        use mtu::devices::options::*;
        let _ = ZvtOptions::from_table(&table);
        let _ = EvolisOptions::from_table(&table);
        let _ = ZplOptions::from_table(&table);
        let _ = MercuryOptions::from_table(&table);
    }
});
