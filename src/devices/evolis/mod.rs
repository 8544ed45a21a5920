//! Evolis card printer command protocol: codec, job builder and the synchronous driver.
//!
//! Source: Evolis "Programming Guide A5013 Rev. E" (framing page 4, compression page 5,
//! `Db` page 14, feeder page 64). Every command gets one CR-terminated reply; the driver sends
//! one command, reads its reply, then sends the next, so a fault stops the job at once and no
//! image data is sent into a printer that cannot print.
//!
//! Status reads. The guide text available to us does not list the status replies, so these
//! commands are taken from integrators' code against the vendor SDK and kept in one table
//! ([`query`]): `Rfv` firmware version, `Rsn` serial number, `Rse` printer state (`OK` or an
//! `ERROR …` text naming the fault), `Rse;f` feeder sensor (`5,00 Volts` = cards present,
//! below 1 V = empty), `Rrt;count` cards left on the ribbon.

pub mod codec;
pub mod job;
pub mod raster;

use std::time::{Duration, Instant};

use self::codec::{Reply, ReplyReader, command};
use self::job::{JobSettings, build_job};
use super::Fault;
use super::card::{CardFault, CardJob, CardPrinter, CardPrinterStatus, PrintReceipt};
use super::{DeviceError, Link, SelfTestReport};
use crate::config::DeviceConfig;

/// The read commands the driver uses (see the module documentation for their sources).
pub mod query {
    /// Firmware version.
    pub const FIRMWARE: (&str, &[&str]) = ("Rfv", &[]);
    /// Serial number.
    pub const SERIAL: (&str, &[&str]) = ("Rsn", &[]);
    /// Printer state: `OK` or an error text.
    pub const STATE: (&str, &[&str]) = ("Rse", &[]);
    /// Feeder sensor voltage.
    pub const FEEDER: (&str, &[&str]) = ("Rse", &["f"]);
    /// Cards left on the ribbon.
    pub const RIBBON: (&str, &[&str]) = ("Rrt", &["count"]);
}

/// Feeder sensor voltage at or above which cards are present (millivolts).
const FEEDER_LOADED_MV: u32 = 1000;

/// The Evolis driver over one link.
pub struct EvolisPrinter {
    link: Box<dyn Link>,
    settings: JobSettings,
    reply_timeout: Duration,
    print_timeout: Duration,
    reader: ReplyReader,
    device: String,
    bytes_sent: u64,
    round_trips: u32,
}

impl EvolisPrinter {
    /// A driver with explicit settings.
    pub fn new(
        link: Box<dyn Link>,
        settings: JobSettings,
        reply_timeout: Duration,
        print_timeout: Duration,
    ) -> Self {
        let device = format!("card printer on {}", link.path());
        EvolisPrinter {
            link,
            settings,
            reply_timeout,
            print_timeout,
            reader: ReplyReader::new(),
            device,
            bytes_sent: 0,
            round_trips: 0,
        }
    }

    /// Builds the driver from its configuration section; a bad option is a
    /// [`DeviceError::Config`] naming the key. Options (`[devices.card.options]`):
    /// `ribbon` (`k`, `ko`, `ymcko` default, `ymckok`), `insertion` (`printer` default: the
    /// printer's own setting, or `feeder`), `contrast` (0–20, default 10), `compression` (K/O
    /// `Dbc`, default false: the vendor library's uncompressed form), `print_timeout_ms`
    /// (default 120000). The reply timeout is the serial section's `timeout_ms`.
    pub fn from_config(cfg: &DeviceConfig, link: Box<dyn Link>) -> Result<Self, DeviceError> {
        let (settings, print_timeout) = settings_from_options(&cfg.options)?;
        Ok(Self::new(link, settings, Duration::from_millis(cfg.serial.timeout_ms), print_timeout))
    }

    /// The job settings in use.
    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    fn protocol(&self, detail: String) -> DeviceError {
        DeviceError::Protocol { device: self.device.clone(), detail }
    }

    fn fault(&self, f: CardFault, said: &str) -> DeviceError {
        DeviceError::fault(self.device.clone(), Fault::Card(f), format!("printer said {said:?}"))
    }

    /// Sends one command and waits for its reply.
    fn exchange(&mut self, bytes: &[u8], timeout: Duration) -> Result<Reply, DeviceError> {
        self.link.write_all(bytes)?;
        self.bytes_sent += bytes.len() as u64;
        self.round_trips += 1;
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 256];
        loop {
            if let Some(r) = self.reader.next_reply() {
                return r.map_err(|e| self.protocol(format!("garbled reply: {e}")));
            }
            let n = self.link.read_some(&mut buf, deadline)?;
            self.reader.push(&buf[..n]);
        }
    }

    /// A read command; on a garbled reply the input is flushed and the query asked once more
    /// (reads are harmless to repeat).
    fn query(&mut self, q: (&str, &[&str])) -> Result<Reply, DeviceError> {
        let bytes = command(q.0, q.1);
        match self.exchange(&bytes, self.reply_timeout) {
            Err(DeviceError::Protocol { .. }) => {
                self.resync()?;
                self.exchange(&bytes, self.reply_timeout)
            }
            other => other,
        }
    }

    fn resync(&mut self) -> Result<(), DeviceError> {
        // Let the rest of a garbled burst arrive, then drop it.
        std::thread::sleep(Duration::from_millis(20));
        self.link.discard_input()?;
        self.reader.clear();
        Ok(())
    }

    fn text_query(
        &mut self,
        q: (&str, &[&str]),
        faults: &mut Vec<CardFault>,
    ) -> Result<Option<String>, DeviceError> {
        match self.query(q)? {
            Reply::Value(v) => Ok(Some(v)),
            Reply::Ok => Ok(Some("OK".into())),
            Reply::Error { fault: Some(f), .. } => {
                push_fault(faults, f);
                Ok(None)
            }
            Reply::Error { text, fault: None } => {
                Err(self.protocol(format!("printer rejected the read {} with {text:?}", q.0)))
            }
        }
    }

    /// Reads firmware, serial, state, feeder and ribbon.
    pub fn read_status(&mut self) -> Result<CardPrinterStatus, DeviceError> {
        // Stale bytes from an earlier, aborted exchange must not pass for answers.
        self.link.discard_input()?;
        self.reader.clear();
        let mut faults = Vec::new();
        let firmware = self.text_query(query::FIRMWARE, &mut faults)?.unwrap_or_default();
        let serial = self.text_query(query::SERIAL, &mut faults)?.unwrap_or_default();
        match self.query(query::STATE)? {
            Reply::Ok => {}
            Reply::Error { fault: Some(f), .. } => push_fault(&mut faults, f),
            Reply::Error { text, fault: None } => {
                return Err(self.protocol(format!("state read answered with an unknown error {text:?}")));
            }
            Reply::Value(v) => {
                return Err(self.protocol(format!("state read answered {v:?}, expected OK or ERROR")));
            }
        }
        let feeder_loaded = match self.text_query(query::FEEDER, &mut faults)? {
            Some(v) => codec::parse_volts(&v).map(|mv| mv >= FEEDER_LOADED_MV),
            None => None,
        };
        if feeder_loaded == Some(false) {
            push_fault(&mut faults, CardFault::FeederEmpty);
        }
        let ribbon_remaining = match self.text_query(query::RIBBON, &mut faults)? {
            Some(v) => codec::parse_count(&v),
            None => None,
        };
        if ribbon_remaining == Some(0) {
            push_fault(&mut faults, CardFault::RibbonEnded);
        }
        Ok(CardPrinterStatus { firmware, serial, ribbon_remaining, feeder_loaded, faults })
    }

    /// Prints one card; see [`CardPrinter::print`].
    pub fn print_card(&mut self, card: &CardJob) -> Result<PrintReceipt, DeviceError> {
        let commands = build_job(&self.settings, card)
            .map_err(|e| DeviceError::Unsupported { device: self.device.clone(), what: e.to_string() })?;
        self.link.discard_input()?;
        self.reader.clear();
        self.bytes_sent = 0;
        self.round_trips = 0;
        let mut panels = Vec::new();
        // From the sequence start on, a card may be fed and printed: any error after it leaves
        // the outcome unknown (a printed card may be in the output hopper).
        let mut acting = false;
        for c in &commands {
            let timeout = if c.ends_sequence { self.print_timeout } else { self.reply_timeout };
            acting |= c.bytes.starts_with(b"\x1bSs");
            let reply = self.exchange(&c.bytes, timeout);
            let mark = |e: DeviceError| if acting { e.after_acting() } else { e };
            let reply = reply.map_err(mark)?;
            match reply {
                Reply::Ok => {}
                Reply::Error { text, fault: Some(f) } => {
                    tracing::warn!(device = %self.device, step = %c.label, reply = %text, "card printer fault");
                    return Err(mark(self.fault(f, &text)));
                }
                Reply::Error { text, fault: None } => {
                    return Err(mark(self.protocol(format!("printer rejected {} with {text:?}", c.label))));
                }
                Reply::Value(v) => {
                    return Err(mark(self.protocol(format!("unexpected reply {v:?} to {}", c.label))));
                }
            }
            if c.label.contains(':') {
                panels.push(c.label.clone());
            }
        }
        Ok(PrintReceipt { bytes_sent: self.bytes_sent, round_trips: self.round_trips, panels })
    }
}

fn push_fault(faults: &mut Vec<CardFault>, f: CardFault) {
    if !faults.contains(&f) {
        faults.push(f);
    }
}

/// Reads the driver options (typed in [`super::options::EvolisOptions`], which
/// `vand check-config` also uses); returns the job settings and the print timeout.
pub fn settings_from_options(options: &toml::Table) -> Result<(JobSettings, Duration), DeviceError> {
    let o = super::options::EvolisOptions::from_table(options)?;
    let settings = JobSettings {
        ribbon: o.ribbon.0,
        insertion: o.insertion.0,
        contrast_k: o.contrast.0 as u8,
        compress: o.compression,
    };
    Ok((settings, o.print_timeout_ms.millis()))
}

impl CardPrinter for EvolisPrinter {
    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError> {
        let st = self.read_status()?;
        let mut lines = vec![
            format!("{}: firmware {}", self.device, st.firmware),
            format!("serial number {}", st.serial),
        ];
        lines.push(match st.ribbon_remaining {
            Some(n) => format!("ribbon: {n} cards left"),
            None => "ribbon: count not reported".into(),
        });
        lines.push(match st.feeder_loaded {
            Some(true) => "feeder: cards present".into(),
            Some(false) => "feeder: empty".into(),
            None => "feeder: not reported".into(),
        });
        if st.faults.is_empty() {
            lines.push("state: ready".into());
        }
        for f in &st.faults {
            lines.push(format!("fault: {} — {}", f.what(), f.action()));
        }
        Ok(SelfTestReport { device: "card".into(), ok: st.faults.is_empty(), lines })
    }

    fn status(&mut self) -> Result<CardPrinterStatus, DeviceError> {
        self.read_status()
    }

    fn print(&mut self, job: &CardJob) -> Result<PrintReceipt, DeviceError> {
        self.print_card(job)
    }
}

#[cfg(test)]
mod tests {
    use super::job::{Insertion, Ribbon};
    use super::*;

    fn table(s: &str) -> toml::Table {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn options_parse_and_name_bad_keys() {
        let (s, t) = settings_from_options(&table(
            "ribbon = \"k\"\ncontrast = 12\ninsertion = \"feeder\"\ncompression = true\nprint_timeout_ms = 5000",
        ))
        .unwrap();
        assert_eq!(s.ribbon, Ribbon::K);
        assert_eq!(s.contrast_k, 12);
        assert_eq!(s.insertion, Insertion::Feeder);
        assert!(s.compress);
        assert_eq!(t, Duration::from_secs(5));
        for bad in [
            "ribbon = \"rgb\"",
            "contrast = 99",
            "insertion = \"manual\"",
            "colour_levels = 32",
            "compression = 1",
        ] {
            match settings_from_options(&table(bad)) {
                Err(DeviceError::Config { key, .. }) => {
                    let name = bad.split(' ').next().unwrap();
                    assert_eq!(key, format!("devices.card.options.{name}"));
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
