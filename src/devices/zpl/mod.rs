//! ZPL II sticker printer: label jobs, `~HS` host status, RFID label encoding, driver.
//!
//! `label` builds jobs and `status` parses replies; both are pure. [`ZplPrinter`] is the
//! synchronous driver over a [`Link`]: it checks `~HS` before each job, sends the job, and polls
//! `~HS` until the printer reports the batch done. A printer that stays silent is a fault (Zebra
//! printers do not answer `~HS` when out of media or ribbon, or with the head open).

pub mod label;
pub mod status;

use std::time::{Duration, Instant};

use super::sticker::{StickerFault, StickerLabel, StickerPrinter, StickerStatus, TagWrite, Tid};
use super::{DeviceError, Fault, Link, LinkError, SelfTestReport};
pub use label::{GfEncoding, LabelError, ZplJob, encode_label};
pub use status::{HostIdentification, HostStatus, ReplyError};

const DEVICE: &str = "sticker";

/// Driver options (`[devices.sticker.options]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZplOptions {
    /// Printer resolution: 203 or 300 dpi.
    pub dpi: u32,
    /// Whether the printer has an RFID encoder.
    pub rfid: bool,
    /// How long to wait for any single reply.
    pub reply_timeout: Duration,
    /// How long a label may take to print, per copy, before it is reported stuck.
    pub print_timeout: Duration,
    /// How `^GF` graphics are sent.
    pub graphics: GfEncoding,
}

impl Default for ZplOptions {
    fn default() -> Self {
        ZplOptions {
            dpi: 203,
            rfid: false,
            reply_timeout: Duration::from_millis(2000),
            print_timeout: Duration::from_secs(20),
            graphics: GfEncoding::Auto,
        }
    }
}

impl ZplOptions {
    /// Reads the options table (typed in [`super::options::ZplOptions`], which
    /// `vand check-config` also uses); an unknown key or a bad value is an error naming the full key.
    pub fn from_table(table: &toml::Table, timeout_ms: u64) -> Result<Self, DeviceError> {
        let o = super::options::ZplOptions::from_table(table)?;
        Ok(ZplOptions {
            dpi: o.dpi.0,
            rfid: o.rfid,
            reply_timeout: Duration::from_millis(timeout_ms),
            print_timeout: o.print_timeout_ms.millis(),
            graphics: o.graphics.0,
        })
    }
}

/// Maps a host status to what stops the printer.
pub fn faults_of(s: &HostStatus) -> Vec<StickerFault> {
    let mut f = Vec::new();
    let mut add = |cond: bool, fault| {
        if cond {
            f.push(fault)
        }
    };
    add(s.paper_out, StickerFault::PaperOut);
    add(s.head_up, StickerFault::HeadOpen);
    add(s.ribbon_out && s.thermal_transfer_mode, StickerFault::RibbonOut);
    add(s.paused, StickerFault::Paused);
    add(s.over_temperature, StickerFault::OverTemperature);
    add(s.under_temperature, StickerFault::UnderTemperature);
    add(s.buffer_full, StickerFault::BufferFull);
    add(s.corrupt_ram, StickerFault::CorruptRam);
    f
}

/// The neutral view of a host status.
pub fn sticker_status(s: &HostStatus) -> StickerStatus {
    let faults = faults_of(s);
    StickerStatus {
        ready: faults.is_empty(),
        faults,
        formats_queued: s.formats_in_buffer,
        labels_remaining: s.labels_remaining,
    }
}

/// The first fault as the typed one; every fault is named in the detail.
fn fault_error(faults: &[StickerFault], context: &str) -> DeviceError {
    let all = faults.iter().map(|f| f.describe()).collect::<Vec<_>>().join(", ");
    let first = faults.first().copied().unwrap_or(StickerFault::NoAnswer);
    DeviceError::fault(DEVICE, Fault::Sticker(first), format!("{context}{all}"))
}

/// The ZPL II driver.
pub struct ZplPrinter {
    link: Box<dyn Link>,
    options: ZplOptions,
}

impl ZplPrinter {
    /// Wraps an open link.
    pub fn new(link: Box<dyn Link>, options: ZplOptions) -> Self {
        ZplPrinter { link, options }
    }

    /// The options in force.
    pub fn options(&self) -> &ZplOptions {
        &self.options
    }

    fn protocol(&self, detail: impl Into<String>) -> DeviceError {
        DeviceError::Protocol { device: format!("{DEVICE} on {}", self.link.path()), detail: detail.into() }
    }

    /// Sends `cmd` and reads `count` framed strings; silence is `Ok(None)`.
    fn framed_query(&mut self, cmd: &[u8], count: usize) -> Result<Option<Vec<Vec<u8>>>, DeviceError> {
        self.link.discard_input()?;
        self.link.write_all(cmd)?;
        let deadline = Instant::now() + self.options.reply_timeout;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 256];
        loop {
            match status::take_frames(&buf, count) {
                Ok(Some((frames, _))) => {
                    return Ok(Some(frames.into_iter().map(<[u8]>::to_vec).collect()));
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = self.link.discard_input();
                    return Err(self.protocol(format!("garbled reply to {}: {e}", show(cmd))));
                }
            }
            match self.link.read_some(&mut chunk, deadline) {
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(LinkError::Timeout { .. }) if buf.is_empty() => return Ok(None),
                Err(LinkError::Timeout { .. }) => {
                    return Err(self.protocol(format!(
                        "incomplete reply to {} ({} bytes, then silence)",
                        show(cmd),
                        buf.len()
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// `~HS`: the full host status. No answer is a fault (never "ready").
    pub fn query_host_status(&mut self) -> Result<HostStatus, DeviceError> {
        match self.framed_query(b"~HS", 3)? {
            None => Err(fault_error(&[StickerFault::NoAnswer], "")),
            Some(frames) => {
                let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
                status::parse_host_status(&refs)
                    .map_err(|e| self.protocol(format!("bad host status reply: {e}")))
            }
        }
    }

    /// `~HI`: model and firmware. Prints nothing.
    pub fn query_identification(&mut self) -> Result<Option<HostIdentification>, DeviceError> {
        match self.framed_query(b"~HI", 1)? {
            None => Ok(None),
            Some(frames) => status::parse_host_identification(&frames[0])
                .map(Some)
                .map_err(|e| self.protocol(format!("bad identification reply: {e}"))),
        }
    }

    fn ready_or_fault(&mut self, context: &str) -> Result<HostStatus, DeviceError> {
        let s = self.query_host_status()?;
        let faults = faults_of(&s);
        if faults.is_empty() { Ok(s) } else { Err(fault_error(&faults, context)) }
    }

    fn encode(&self, label: &StickerLabel, tag: Option<&TagWrite>) -> Result<ZplJob, DeviceError> {
        if label.dpi != self.options.dpi {
            return Err(DeviceError::Protocol {
                device: DEVICE.into(),
                detail: format!(
                    "label laid out for {} dpi but the printer is configured for {} dpi",
                    label.dpi, self.options.dpi
                ),
            });
        }
        encode_label(label, tag, self.options.graphics).map_err(|e| DeviceError::Protocol {
            device: DEVICE.into(),
            detail: format!("label not printable: {e}"),
        })
    }

    /// Polls `~HS` until no format is queued and no label remains, or a fault or the deadline.
    fn wait_printed(&mut self, copies: u32) -> Result<(), DeviceError> {
        let allowed = self.options.print_timeout * copies.clamp(1, 100);
        let deadline = Instant::now() + allowed;
        loop {
            // The label job is out: whatever goes wrong now, the label may have printed.
            let s = self.query_host_status().map_err(DeviceError::after_acting)?;
            let faults = faults_of(&s);
            if !faults.is_empty() {
                return Err(fault_error(&faults, "while printing: ").after_acting());
            }
            if s.formats_in_buffer == 0 && s.labels_remaining == 0 && !s.partial_format {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(DeviceError::fault(
                    DEVICE,
                    Fault::Sticker(StickerFault::NotFinished),
                    format!(
                        "not finished after {} s ({} formats queued, {} labels remaining)",
                        allowed.as_secs(),
                        s.formats_in_buffer,
                        s.labels_remaining
                    ),
                )
                .after_acting());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Reads `^HV` lines until both TID and EPC arrived or the deadline.
    fn read_tag_lines(&mut self, deadline: Instant) -> Result<Vec<status::TagLine>, DeviceError> {
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        let mut chunk = [0u8; 256];
        while lines.len() < 2 {
            match self.link.read_some(&mut chunk, deadline) {
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(LinkError::Timeout { .. }) => break,
                Err(e) => return Err(e.into()),
            }
            let (got, used) = status::take_tag_lines(&buf)
                .map_err(|e| self.protocol(format!("bad tag data reply: {e}")))?;
            lines.extend(got);
            buf.drain(..used);
        }
        Ok(lines)
    }
}

fn show(cmd: &[u8]) -> String {
    String::from_utf8_lossy(cmd).into_owned()
}

impl StickerPrinter for ZplPrinter {
    fn self_test(&mut self) -> Result<SelfTestReport, DeviceError> {
        let mut lines = Vec::new();
        let mut ok = true;
        match self.query_host_status() {
            Ok(s) => {
                let st = sticker_status(&s);
                ok &= st.ready;
                lines.push(if st.ready {
                    format!(
                        "host status: ready ({} dots label, {})",
                        s.label_length_dots,
                        if s.thermal_transfer_mode { "thermal transfer" } else { "direct thermal" }
                    )
                } else {
                    let f: Vec<_> = st.faults.iter().map(|f| f.describe()).collect();
                    format!("host status: {}", f.join(", "))
                });
            }
            Err(e) => {
                ok = false;
                lines.push(format!("host status: {e}"));
            }
        }
        match self.query_identification() {
            Ok(Some(id)) => {
                let dpi = match id.dots_per_mm {
                    8 => Some(203),
                    12 => Some(300),
                    _ => None,
                };
                let mut line = format!("identification: {} firmware {}", id.model, id.firmware);
                if dpi.is_some_and(|d| d != self.options.dpi) {
                    ok = false;
                    line.push_str(&format!(
                        " — prints at {} dpi but configured for {} dpi",
                        dpi.unwrap_or(0),
                        self.options.dpi
                    ));
                }
                lines.push(line);
            }
            Ok(None) => {
                ok = false;
                lines.push("identification: no answer to ~HI".into());
            }
            Err(e) => {
                ok = false;
                lines.push(format!("identification: {e}"));
            }
        }
        Ok(SelfTestReport { device: DEVICE.into(), ok, lines })
    }

    fn host_status(&mut self) -> Result<StickerStatus, DeviceError> {
        match self.query_host_status() {
            Ok(s) => Ok(sticker_status(&s)),
            Err(DeviceError::Fault { .. }) => Ok(StickerStatus {
                ready: false,
                faults: vec![StickerFault::NoAnswer],
                formats_queued: 0,
                labels_remaining: 0,
            }),
            Err(e) => Err(e),
        }
    }

    fn print_label(&mut self, label: &StickerLabel) -> Result<(), DeviceError> {
        let job = self.encode(label, None)?;
        self.ready_or_fault("not printed: ")?;
        tracing::debug!(bytes = job.len(), "sending label job");
        self.link.write_all(job.as_bytes()).map_err(|e| DeviceError::from(e).after_acting())?;
        self.wait_printed(label.copies)
    }

    fn print_rfid_label(&mut self, label: &StickerLabel, tag: &TagWrite) -> Result<Tid, DeviceError> {
        if !self.options.rfid {
            return Err(DeviceError::Unsupported {
                device: DEVICE.into(),
                what: "RFID encoding (set devices.sticker.options.rfid = true on an RFID model)".into(),
            });
        }
        let job = self.encode(label, Some(tag))?;
        self.ready_or_fault("not printed: ")?;
        self.link.discard_input()?;
        tracing::debug!(bytes = job.len(), job = %job.redacted(), "sending RFID label job");
        self.link.write_all(job.as_bytes()).map_err(|e| DeviceError::from(e).after_acting())?;
        let deadline = Instant::now() + self.options.reply_timeout + self.options.print_timeout;
        let lines = self.read_tag_lines(deadline).map_err(DeviceError::after_acting)?;
        let tid = lines.iter().find(|l| l.header == "TID").map(|l| l.data.clone());
        let epc = lines.iter().find(|l| l.header == "EPC").map(|l| l.data.clone());
        let (Some(tid), Some(epc)) = (tid, epc) else {
            // Silence: either the printer faulted or the tag could not be encoded (voided).
            let s = self.query_host_status().map_err(DeviceError::after_acting)?;
            let faults = faults_of(&s);
            if !faults.is_empty() {
                return Err(fault_error(&faults, "tag not encoded: ").after_acting());
            }
            // The printer voids a label whose tag it could not encode: nothing valid was made,
            // but a (voided) label did come out and the tag may hold a partial write.
            return Err(DeviceError::fault(
                DEVICE,
                Fault::Sticker(StickerFault::RfidVoid),
                "no tag under the antenna or the write failed; the label was voided",
            )
            .after_acting());
        };
        if epc != tag.epc {
            return Err(DeviceError::fault(
                DEVICE,
                Fault::Rfid(super::RfidFault::VerifyFailed),
                format!("RFID tag {} read back a different EPC than written", hex::encode_upper(&tid)),
            )
            .after_acting());
        }
        self.wait_printed(1)?;
        Ok(Tid(tid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let t: toml::Table = toml::from_str("dpi = 300\nrfid = true").unwrap();
        let o = ZplOptions::from_table(&t, 1500).unwrap();
        assert_eq!((o.dpi, o.rfid, o.reply_timeout), (300, true, Duration::from_millis(1500)));
        for (text, key) in [("dpi = 200", "dpi"), ("rfid = 1", "rfid"), ("colour = true", "colour")] {
            let t: toml::Table = toml::from_str(text).unwrap();
            match ZplOptions::from_table(&t, 1000) {
                Err(DeviceError::Config { key: k, .. }) => assert!(k.ends_with(key), "{k}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
