//! Print job builder: settings and card images in, the ordered list of encoded commands out.
//! Pure: no I/O. The driver sends the commands one by one and reads a reply after each.
//!
//! The job is the one Evolis's own library writes for the same card (libevolis 9.4.1 through
//! `evolis-sdk`, virtual printer `model://Evolis Primacy 2`, `PrintSession.print_to_file`;
//! `tests/evolis_vendor.rs` generates the vendor's job at test time and compares command by
//! command and panel by panel):
//!
//! ```text
//! Pcla;1  Ppmode;0  Pr;<ribbon code>;t  Pwres;300;300;<ribbon code>  Psk;10  Piqla;a;d  Pmc;h
//! Peoic;k;D  [Pcim;F]  Ss  Mr;s
//! Sr  Pc;a;=;10 Pl;a;=;10 Pc;k;=;<contrast> Pc;o;=;10 Pc;l;=;10 Pc;f;=;10 Pl;f;=;10
//!     [Pida;<white %>;<mean Y>;<mean M>;<mean C>]   (colour ribbons only)
//!     Db;y;256;… Db;m;256;… Db;c;256;… Db;k;2;… Db;o;2;…   (panels with ink only)
//! [Sv  the same block for the back]
//! Se  Pcla;0
//! ```
//!
//! Deliberate differences from the vendor's file, each checked by the vendor test:
//! - No `Psync;…` commands and no `<HEADER>`, `<CARD>`, `<BINARY Size=…>` … tags between
//!   commands: they mark the job's structure for the vendor's spooler and are not printer
//!   commands in the Programming Guide. The simulator accepts them (the vendor's file prints).
//! - No `Psmgr;1` / `Ppws;<n>`: the library's session management (one host at a time on a
//!   shared printer, a session key that is the job's Unix time). The van's printer is on one
//!   exclusive link owned by vand.
//! - `Dbc` (compressed K/O upload) when `compress` is set, off by default because the vendor
//!   library never writes it; see [`JobSettings::compress`].

use super::codec::{command, command_with_data};
use super::raster::{Levels, RasterError, compress_mono, ink_summary, is_blank, mono_lines, plane_lines};
use crate::devices::card::{Bitmap1, CARD_HEIGHT, CARD_WIDTH, CardJob, CardSide};

/// Ribbon types this driver knows (the code in `Pr;<code>;t`, the vendor library's
/// `RibbonType` value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ribbon {
    /// Monochrome black resin (vendor `KBLACK`, code 100).
    K,
    /// Black resin + overlay (`KO`, code 1).
    Ko,
    /// Colour: yellow, magenta, cyan, black, overlay (`YMCKO`, code 0).
    Ymcko,
    /// Colour front with an extra black panel for the back (`YMCKOK`, code 4).
    Ymckok,
}

impl Ribbon {
    /// Parses a configuration value.
    pub fn parse(s: &str) -> Option<Ribbon> {
        match s.to_ascii_lowercase().as_str() {
            "k" => Some(Ribbon::K),
            "ko" => Some(Ribbon::Ko),
            "ymcko" => Some(Ribbon::Ymcko),
            "ymckok" => Some(Ribbon::Ymckok),
            _ => None,
        }
    }

    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            Ribbon::K => "k",
            Ribbon::Ko => "ko",
            Ribbon::Ymcko => "ymcko",
            Ribbon::Ymckok => "ymckok",
        }
    }

    /// The vendor's ribbon code, as sent in `Pr` and `Pwres`.
    pub fn code(self) -> u32 {
        match self {
            Ribbon::K => 100,
            Ribbon::Ko => 1,
            Ribbon::Ymcko => 0,
            Ribbon::Ymckok => 4,
        }
    }

    fn has_colour(self) -> bool {
        matches!(self, Ribbon::Ymcko | Ribbon::Ymckok)
    }

    fn has_overlay(self) -> bool {
        !matches!(self, Ribbon::K)
    }
}

/// Where the printer takes the card from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insertion {
    /// The printer's own setting; nothing is sent (the vendor library's default, `PRINTER`).
    Printer,
    /// From the feeder: `Pcim;F`, as the vendor library sends for `GInputTray=FEEDER`.
    Feeder,
}

impl Insertion {
    /// Parses a configuration value (`printer`, `feeder`).
    pub fn parse(s: &str) -> Option<Insertion> {
        match s.to_ascii_lowercase().as_str() {
            "printer" => Some(Insertion::Printer),
            "feeder" => Some(Insertion::Feeder),
            _ => None,
        }
    }
}

/// How jobs are encoded, from the driver's configuration options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSettings {
    /// Installed ribbon type.
    pub ribbon: Ribbon,
    /// Card insertion.
    pub insertion: Insertion,
    /// Black contrast (`Pc;k;=;n`), 0–20; 10 is the printer and vendor-library default.
    pub contrast_k: u8,
    /// Send K/O panels as `Dbc;<panel>;2;<length>;<data>` when that is shorter than `Db`.
    ///
    /// The vendor library (9.4.1) never compresses; a capture of Evolis's Windows driver sends
    /// `Dbc;k;2;<length>;`, which is the header form used here. Worth it only on a serial line:
    /// at 115,200 baud an uncompressed K panel is 7.1 s of wire time and a full overlay another
    /// 7.1 s, while `Dbc` sends a full overlay in 1,016 bytes (0.09 s) and a text-like K panel
    /// in a fraction (`cargo bench --bench wire_evolis`). On USB the saving is milliseconds, so
    /// the default is off: the vendor's own form.
    pub compress: bool,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings { ribbon: Ribbon::Ymcko, insertion: Insertion::Printer, contrast_k: 10, compress: false }
    }
}

/// A job that cannot be encoded for the installed ribbon or has bad images.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// An image has the wrong size.
    #[error(transparent)]
    Raster(#[from] RasterError),
    /// The job asks for panels the ribbon does not have.
    #[error("the {side} side asks for {what}, but the configured ribbon is {ribbon}")]
    Ribbon { side: &'static str, what: &'static str, ribbon: &'static str },
    /// Nothing to print.
    #[error("the card has nothing to print on the front")]
    Empty,
}

/// One command of a job, with a label for logs and receipts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCommand {
    /// The command text (`Ss`, `Pc;k;=;10`) or, for a panel, `front:k` (never image content).
    pub label: String,
    /// The encoded bytes.
    pub bytes: Vec<u8>,
    /// Whether this command ends the sequence (its reply comes after the card is printed).
    pub ends_sequence: bool,
}

fn plain(params: &[&str]) -> JobCommand {
    JobCommand { label: params.join(";"), bytes: command(params[0], &params[1..]), ends_sequence: false }
}

/// Encodes a whole card job.
pub fn build_job(settings: &JobSettings, job: &CardJob) -> Result<Vec<JobCommand>, JobError> {
    if job.front.is_empty() {
        return Err(JobError::Empty);
    }
    let code = settings.ribbon.code().to_string();
    let mut out = vec![
        plain(&["Pcla", "1"]),
        plain(&["Ppmode", "0"]),
        plain(&["Pr", &code, "t"]),
        plain(&["Pwres", "300", "300", &code]),
        plain(&["Psk", "10"]),
        plain(&["Piqla", "a", "d"]),
        plain(&["Pmc", "h"]),
        plain(&["Peoic", "k", "D"]),
    ];
    if settings.insertion == Insertion::Feeder {
        out.push(plain(&["Pcim", "F"]));
    }
    out.push(plain(&["Ss"]));
    out.push(plain(&["Mr", "s"]));
    out.push(plain(&["Sr"]));
    side_commands(settings, "front", &job.front, &mut out)?;
    if let Some(back) = job.back.as_ref().filter(|b| !b.is_empty()) {
        out.push(plain(&["Sv"]));
        side_commands(settings, "back", back, &mut out)?;
    }
    out.push(JobCommand { label: "Se".into(), bytes: command("Se", &[]), ends_sequence: true });
    out.push(plain(&["Pcla", "0"]));
    Ok(out)
}

fn side_commands(
    settings: &JobSettings,
    side: &'static str,
    s: &CardSide,
    out: &mut Vec<JobCommand>,
) -> Result<(), JobError> {
    let ribbon = settings.ribbon.name();
    let contrast = settings.contrast_k.to_string();
    for c in [
        ["Pc", "a", "=", "10"],
        ["Pl", "a", "=", "10"],
        ["Pc", "k", "=", &contrast],
        ["Pc", "o", "=", "10"],
        ["Pc", "l", "=", "10"],
        ["Pc", "f", "=", "10"],
        ["Pl", "f", "=", "10"],
    ] {
        out.push(plain(&c));
    }
    let planes = match &s.ymc {
        Some(ymc) => {
            if !settings.ribbon.has_colour() {
                return Err(JobError::Ribbon { side, what: "colour", ribbon });
            }
            let mut planes = Vec::with_capacity(3);
            for (name, plane) in [("y", &ymc.y), ("m", &ymc.m), ("c", &ymc.c)] {
                planes.push((name, plane_lines(&format!("{side} {name} plane"), plane)?));
            }
            planes
        }
        None => Vec::new(),
    };
    if settings.ribbon.has_colour() {
        let summary = match planes.as_slice() {
            [(_, y), (_, m), (_, c)] => ink_summary(Some([y, m, c])),
            _ => ink_summary(None),
        };
        let p: Vec<String> = summary.iter().map(u64::to_string).collect();
        out.push(plain(&["Pida", &p[0], &p[1], &p[2], &p[3]]));
    }
    for (name, data) in planes {
        if is_blank(&data) {
            continue;
        }
        out.push(JobCommand {
            label: format!("{side}:{name}"),
            bytes: command_with_data("Db", &[name, Levels::L256.param()], &data),
            ends_sequence: false,
        });
    }
    if let Some(k) = &s.k {
        let lines = mono_lines(&format!("{side} k bitmap"), k)?;
        if !is_blank(&lines) {
            out.push(mono_command(settings, side, "k", &lines));
        }
    }
    if s.overlay {
        if !settings.ribbon.has_overlay() {
            return Err(JobError::Ribbon { side, what: "an overlay", ribbon });
        }
        let lines = mono_lines(&format!("{side} overlay"), &Bitmap1::full(CARD_WIDTH, CARD_HEIGHT))?;
        out.push(mono_command(settings, side, "o", &lines));
    }
    Ok(())
}

fn mono_command(settings: &JobSettings, side: &str, panel: &str, lines: &[u8]) -> JobCommand {
    let label = format!("{side}:{panel}");
    if settings.compress {
        let packed = compress_mono(lines);
        if packed.len() < lines.len() {
            // `Dbc;<panel>;<levels>;<compressed length>;<data>`: the header form of the vendor
            // Windows driver's capture (`Dbc;k;2;11682;…`).
            let len = packed.len().to_string();
            return JobCommand {
                label,
                bytes: command_with_data("Dbc", &[panel, Levels::Two.param(), &len], &packed),
                ends_sequence: false,
            };
        }
    }
    JobCommand {
        label,
        bytes: command_with_data("Db", &[panel, Levels::Two.param()], lines),
        ends_sequence: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::card::{ColourPlanes, Plane8};

    fn k_only() -> CardJob {
        let mut k = Bitmap1::blank(648, 1016);
        k.set(5, 5, true);
        CardJob { front: CardSide { k: Some(k), ymc: None, overlay: false }, back: None }
    }

    fn labels(cmds: &[JobCommand]) -> Vec<&str> {
        cmds.iter().map(|c| c.label.as_str()).collect()
    }

    const HEAD: [&str; 10] = [
        "Pcla;1",
        "Ppmode;0",
        "Pr;100;t",
        "Pwres;300;300;100",
        "Psk;10",
        "Piqla;a;d",
        "Pmc;h",
        "Peoic;k;D",
        "Ss",
        "Mr;s",
    ];
    const SIDE: [&str; 7] =
        ["Pc;a;=;10", "Pl;a;=;10", "Pc;k;=;10", "Pc;o;=;10", "Pc;l;=;10", "Pc;f;=;10", "Pl;f;=;10"];

    #[test]
    fn mono_job_sequence() {
        let s = JobSettings { ribbon: Ribbon::K, ..JobSettings::default() };
        let cmds = build_job(&s, &k_only()).unwrap();
        let mut expect: Vec<&str> = HEAD.to_vec();
        expect.push("Sr");
        expect.extend(SIDE);
        expect.extend(["front:k", "Se", "Pcla;0"]);
        assert_eq!(labels(&cmds), expect);
        assert_eq!(cmds[2].bytes, b"\x1bPr;100;t\r");
        assert_eq!(cmds[3].bytes, b"\x1bPwres;300;300;100\r");
        let db = &cmds[18].bytes;
        assert!(db.starts_with(b"\x1bDb;k;2;"));
        assert_eq!(db.len(), 8 + 82_296 + 1);
        assert!(cmds[19].ends_sequence);
    }

    #[test]
    fn compressed_when_asked_and_smaller() {
        let s = JobSettings { ribbon: Ribbon::K, compress: true, ..JobSettings::default() };
        let cmds = build_job(&s, &k_only()).unwrap();
        let dbc = &cmds[18].bytes;
        // Pixel (5,5) lands at line 1010, position 642 (byte 80) after the half turn: 1015 white
        // lines (1 byte each) + that line's count and 81 useful bytes = 1097 bytes.
        let head = b"\x1bDbc;k;2;1097;";
        assert!(dbc.starts_with(head), "{:?}", String::from_utf8_lossy(&dbc[..20]));
        assert_eq!(dbc.len(), head.len() + 1097 + 1);
    }

    #[test]
    fn feeder_insertion_and_contrast() {
        let s =
            JobSettings { ribbon: Ribbon::Ko, insertion: Insertion::Feeder, contrast_k: 12, compress: false };
        let cmds = build_job(&s, &k_only()).unwrap();
        assert_eq!(labels(&cmds)[8], "Pcim;F");
        assert!(labels(&cmds).contains(&"Pc;k;=;12"));
        assert!(labels(&cmds).contains(&"Pr;1;t"));
    }

    #[test]
    fn ribbon_checks() {
        let s = JobSettings { ribbon: Ribbon::K, ..JobSettings::default() };
        let mut job = k_only();
        job.front.overlay = true;
        assert!(matches!(build_job(&s, &job), Err(JobError::Ribbon { what: "an overlay", .. })));
        job.front.overlay = false;
        let p = Plane8::filled(648, 1016, 0);
        job.front.ymc = Some(ColourPlanes { y: p.clone(), m: p.clone(), c: p });
        assert!(matches!(build_job(&s, &job), Err(JobError::Ribbon { what: "colour", .. })));
        assert_eq!(build_job(&s, &CardJob::default()), Err(JobError::Empty));
    }

    #[test]
    fn colour_two_sided_order_and_blank_panels_left_out() {
        let p = Plane8::filled(648, 1016, 200);
        let mut job = k_only();
        job.front.ymc = Some(ColourPlanes { y: p.clone(), m: Plane8::filled(648, 1016, 0), c: p });
        job.front.overlay = true;
        job.back = Some(CardSide { k: Some(Bitmap1::blank(648, 1016)), ymc: None, overlay: true });
        let cmds = build_job(&JobSettings::default(), &job).unwrap();
        let l = labels(&cmds);
        let sr = l.iter().position(|&x| x == "Sr").unwrap();
        assert_eq!(l[sr + 8], "Pida;0;200;0;200");
        // Blank magenta and the blank back K are not sent, as the vendor library does.
        assert_eq!(&l[sr + 9..sr + 13], ["front:y", "front:c", "front:k", "front:o"]);
        assert_eq!(l[sr + 13], "Sv");
        assert_eq!(l[sr + 21], "Pida;100;0;0;0");
        assert_eq!(&l[sr + 22..], ["back:o", "Se", "Pcla;0"]);
        let y = &cmds[sr + 9].bytes;
        assert!(y.starts_with(b"\x1bDb;y;256;"));
        assert_eq!(y.len(), b"\x1bDb;y;256;".len() + 658_368 + 1);
        assert!(cmds[sr + 12].bytes[8..8 + 82_296].iter().all(|&b| b == 0xFF), "full overlay");
    }
}
