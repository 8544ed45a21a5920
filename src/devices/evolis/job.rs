//! Print job builder: settings and card images in, the ordered list of encoded commands out.
//! Pure: no I/O. The driver sends the commands one by one and reads a reply after each.
//!
//! Order (guide §8 and its programming example; same as the open-source driver):
//! `Pr;<ribbon>` → `Pmi;<insertion>;s` → `Pc;k;=;<contrast>` → `Ss` → `Sr` → front panels →
//! `Sv` → back panels → `Se`. Panels go in ribbon order y, m, c, k, o.

use super::codec::{command, command_with_data};
use super::raster::{Levels, RasterError, compress_mono, mono_lines, pack_levels, pack_mono, plane_lines};
use crate::devices::card::{Bitmap1, CARD_HEIGHT, CARD_WIDTH, CardJob, CardSide};

/// Ribbon types this driver knows (the `Pr` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ribbon {
    /// Monochrome black resin.
    K,
    /// Black resin + overlay.
    Ko,
    /// Colour: yellow, magenta, cyan, black, overlay.
    Ymcko,
    /// Colour front with an extra black panel for the back.
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

    /// The `Pr` parameter.
    pub fn param(self) -> &'static str {
        match self {
            Ribbon::K => "k",
            Ribbon::Ko => "ko",
            Ribbon::Ymcko => "ymcko",
            Ribbon::Ymckok => "ymckok",
        }
    }

    fn has_colour(self) -> bool {
        matches!(self, Ribbon::Ymcko | Ribbon::Ymckok)
    }

    fn has_overlay(self) -> bool {
        !matches!(self, Ribbon::K)
    }
}

/// Where the printer takes the card from (`Pmi` first parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insertion {
    /// From the feeder (`F`).
    Feeder,
    /// Manual, one card at a time (`M`).
    Manual,
    /// Automatic (`B`).
    Auto,
}

impl Insertion {
    /// Parses a configuration value (`feeder`, `manual`, `auto`).
    pub fn parse(s: &str) -> Option<Insertion> {
        match s.to_ascii_lowercase().as_str() {
            "feeder" | "f" => Some(Insertion::Feeder),
            "manual" | "m" => Some(Insertion::Manual),
            "auto" | "b" => Some(Insertion::Auto),
            _ => None,
        }
    }

    /// The `Pmi` parameter.
    pub fn param(self) -> &'static str {
        match self {
            Insertion::Feeder => "F",
            Insertion::Manual => "M",
            Insertion::Auto => "B",
        }
    }
}

/// How jobs are encoded, from the driver's configuration options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSettings {
    /// Installed ribbon type.
    pub ribbon: Ribbon,
    /// Card insertion mode.
    pub insertion: Insertion,
    /// Black contrast (`Pc;k;=;n`), 0–20; 10 is the printer default.
    pub contrast_k: u8,
    /// Grey levels for Y, M, C. Default 32 (5 bits): the smallest upload the guide allows,
    /// 28 % less wire time than 128 levels on a 115 200 baud line; 64/128 for photo work.
    pub colour_levels: Levels,
    /// Use `Dbc` for K/O panels when it is smaller than `Db`.
    pub compress: bool,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            ribbon: Ribbon::Ymcko,
            insertion: Insertion::Feeder,
            contrast_k: 10,
            colour_levels: Levels::L32,
            compress: true,
        }
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
    /// `setup`, `Ss`, `front:k`, … (never image content).
    pub label: String,
    /// The encoded bytes.
    pub bytes: Vec<u8>,
    /// Whether this command ends the sequence (its reply comes after the card is printed).
    pub ends_sequence: bool,
}

/// Encodes a whole card job.
pub fn build_job(settings: &JobSettings, job: &CardJob) -> Result<Vec<JobCommand>, JobError> {
    if job.front.is_empty() {
        return Err(JobError::Empty);
    }
    let mut out = Vec::new();
    let plain = |label: &str, bytes: Vec<u8>| JobCommand { label: label.into(), bytes, ends_sequence: false };
    out.push(plain("Pr", command("Pr", &[settings.ribbon.param()])));
    out.push(plain("Pmi", command("Pmi", &[settings.insertion.param(), "s"])));
    let contrast = settings.contrast_k.to_string();
    out.push(plain("Pc", command("Pc", &["k", "=", &contrast])));
    out.push(plain("Ss", command("Ss", &[])));
    out.push(plain("Sr", command("Sr", &[])));
    side_commands(settings, "front", &job.front, &mut out)?;
    if let Some(back) = job.back.as_ref().filter(|b| !b.is_empty()) {
        out.push(plain("Sv", command("Sv", &[])));
        side_commands(settings, "back", back, &mut out)?;
    }
    out.push(JobCommand { label: "Se".into(), bytes: command("Se", &[]), ends_sequence: true });
    Ok(out)
}

fn side_commands(
    settings: &JobSettings,
    side: &'static str,
    s: &CardSide,
    out: &mut Vec<JobCommand>,
) -> Result<(), JobError> {
    let ribbon = settings.ribbon.param();
    if let Some(ymc) = &s.ymc {
        if !settings.ribbon.has_colour() {
            return Err(JobError::Ribbon { side, what: "colour", ribbon });
        }
        for (name, plane) in [("y", &ymc.y), ("m", &ymc.m), ("c", &ymc.c)] {
            let lines = plane_lines(&format!("{side} {name} plane"), plane)?;
            let data = pack_levels(&lines, settings.colour_levels);
            out.push(JobCommand {
                label: format!("{side}:{name}"),
                bytes: command_with_data("Db", &[name, settings.colour_levels.param()], &data),
                ends_sequence: false,
            });
        }
    }
    if let Some(k) = &s.k {
        out.push(mono_command(settings, side, "k", k)?);
    }
    if s.overlay {
        if !settings.ribbon.has_overlay() {
            return Err(JobError::Ribbon { side, what: "an overlay", ribbon });
        }
        out.push(mono_command(settings, side, "o", &Bitmap1::full(CARD_WIDTH, CARD_HEIGHT))?);
    }
    Ok(())
}

fn mono_command(
    settings: &JobSettings,
    side: &str,
    panel: &str,
    b: &Bitmap1,
) -> Result<JobCommand, JobError> {
    let lines = mono_lines(&format!("{side} {panel} bitmap"), b)?;
    let plain = pack_mono(&lines);
    let label = format!("{side}:{panel}");
    if settings.compress {
        let packed = compress_mono(&lines);
        if packed.len() < plain.len() {
            // `Dbc;<panel>;<lines>;<length>;<data>`: the parameter order of the open-source
            // decoder (panel, line, length, data). We send the whole panel, so the line
            // parameter is the line count, 1016.
            let len = packed.len().to_string();
            let nlines = CARD_HEIGHT.to_string();
            return Ok(JobCommand {
                label,
                bytes: command_with_data("Dbc", &[panel, &nlines, &len], &packed),
                ends_sequence: false,
            });
        }
    }
    Ok(JobCommand { label, bytes: command_with_data("Db", &[panel, "2"], &plain), ends_sequence: false })
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

    #[test]
    fn mono_job_sequence() {
        let s = JobSettings { ribbon: Ribbon::K, compress: false, ..JobSettings::default() };
        let cmds = build_job(&s, &k_only()).unwrap();
        let labels: Vec<_> = cmds.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["Pr", "Pmi", "Pc", "Ss", "Sr", "front:k", "Se"]);
        // Same setup bytes as the guide's example and the open-source driver.
        assert_eq!(cmds[0].bytes, b"\x1bPr;k\r");
        assert_eq!(cmds[1].bytes, b"\x1bPmi;F;s\r");
        assert_eq!(cmds[2].bytes, b"\x1bPc;k;=;10\r");
        assert_eq!(cmds[3].bytes, b"\x1bSs\r");
        assert_eq!(cmds[6].bytes, b"\x1bSe\r");
        let db = &cmds[5].bytes;
        assert!(db.starts_with(b"\x1bDb;k;2;"));
        assert_eq!(db.len(), 8 + 84_624 + 1);
        assert!(cmds[6].ends_sequence);
    }

    #[test]
    fn compressed_when_smaller() {
        let s = JobSettings { ribbon: Ribbon::K, ..JobSettings::default() };
        let cmds = build_job(&s, &k_only()).unwrap();
        let dbc = &cmds[5].bytes;
        // 1015 white lines (1 byte each) + one line with 1 useful byte (2 bytes) = 1017 bytes.
        let head = b"\x1bDbc;k;1016;1017;";
        assert!(dbc.starts_with(head));
        assert_eq!(dbc.len(), head.len() + 1017 + 1);
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
    fn colour_two_sided_order() {
        let p = Plane8::filled(648, 1016, 200);
        let mut job = k_only();
        job.front.ymc = Some(ColourPlanes { y: p.clone(), m: p.clone(), c: p });
        job.front.overlay = true;
        job.back = Some(CardSide { k: Some(Bitmap1::blank(648, 1016)), ymc: None, overlay: false });
        let cmds = build_job(&JobSettings::default(), &job).unwrap();
        let labels: Vec<_> = cmds.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "Pr", "Pmi", "Pc", "Ss", "Sr", "front:y", "front:m", "front:c", "front:k", "front:o", "Sv",
                "back:k", "Se"
            ]
        );
        assert!(cmds[5].bytes.starts_with(b"\x1bDb;y;32;"));
        assert_eq!(cmds[5].bytes.len(), b"\x1bDb;y;32;".len() + 423_120 + 1);
        // Full overlay: every line black → 1016 × 0xFF.
        assert_eq!(cmds[9].bytes.len(), b"\x1bDbc;o;1016;1016;".len() + 1016 + 1);
    }
}
