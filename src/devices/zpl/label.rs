//! Label jobs in ZPL II: `^XA … ^XZ` with field origins, `^GFA` graphics (plain or compressed
//! ASCII hex), `^BQ` QR codes, `^A0` Latin text, `^GB` boxes, `^PQ` quantity and the RFID
//! commands `^RS`/`^RF`/`^RL`/`^HV`. Pure: labels in, bytes out.

use std::fmt;
use std::fmt::Write as _;

use crate::devices::sticker::{
    LabelElement, MonoBitmap, QrLevel, StickerLabel, TagLock, TagPassword, TagWrite,
};

/// Largest `c` (graphic field count) the ZPL II guide accepts for `^GF` (1 to 99999); larger
/// bitmaps are sent as several horizontal bands.
pub const GF_MAX_BYTES: usize = 99_999;

/// Bytes of TID read back from bank 2 (96-bit TIDs are the common Gen2 "extended" size).
pub const TID_BYTES: usize = 12;

/// `^FN` field numbers and `^HV` headers used to return tag data to the host.
pub const TID_FIELD: u32 = 1;
/// Field number of the EPC read back after writing.
pub const EPC_FIELD: u32 = 2;
/// Header the printer puts before the TID on the `^HV` line.
pub const TID_HEADER: &str = "TID[";
/// Header the printer puts before the read-back EPC on the `^HV` line.
pub const EPC_HEADER: &str = "EPC[";

/// A label the job builder refused, with what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// Text the printer font cannot take (non-ASCII, control characters, `^` or `~`).
    #[error("text field {text:?}: only printable ASCII without ^ and ~ (render other text as a bitmap)")]
    BadText { text: String },
    /// QR data that automatic input mode cannot carry.
    #[error("QR data: {detail}")]
    BadQr { detail: String },
    /// Label geometry out of range.
    #[error("label: {detail}")]
    BadLabel { detail: String },
    /// Tag data that cannot be written as asked.
    #[error("RFID tag: {detail}")]
    BadTag { detail: String },
}

/// How `^GFA` data is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GfEncoding {
    /// Two hex digits per byte.
    Hex,
    /// The ZPL compression scheme (repeat counts G–Y / g–z, `,` `!` `:` line codes).
    Compressed,
    /// Whichever of the two is shorter for each graphic.
    Auto,
}

/// A finished job: the bytes to send. `Debug` and [`ZplJob::redacted`] hide tag passwords.
#[derive(Clone, PartialEq, Eq)]
pub struct ZplJob {
    bytes: Vec<u8>,
}

impl ZplJob {
    /// The bytes for the printer (contain tag passwords when the job writes them).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the job is empty (never true for a built job).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The job as text with every password field replaced by `********`, safe for logs and dumps.
    pub fn redacted(&self) -> String {
        redact(&String::from_utf8_lossy(&self.bytes))
    }
}

impl fmt::Debug for ZplJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZplJob({} bytes: {:?})", self.bytes.len(), self.redacted())
    }
}

impl Drop for ZplJob {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.bytes);
    }
}

/// Replaces the field data of every `^RF?,?,P` command (access/kill passwords) with `********`.
pub fn redact(zpl: &str) -> String {
    let mut out = String::with_capacity(zpl.len());
    let mut rest = zpl;
    while let Some(pos) = rest.find("^RF") {
        let (head, tail) = rest.split_at(pos);
        out.push_str(head);
        let params_end = tail[1..].find(['^', '~']).map_or(tail.len(), |p| p + 1);
        let params = &tail[3..params_end];
        out.push_str(&tail[..params_end]);
        rest = &tail[params_end..];
        let is_password = params.split(',').nth(2).is_some_and(|b| b.trim() == "P");
        if is_password && rest.starts_with("^FD") {
            let data_end = rest[1..].find(['^', '~']).map_or(rest.len(), |p| p + 1);
            out.push_str("^FD********");
            rest = &rest[data_end..];
        }
    }
    out.push_str(rest);
    out
}

/// Builds the job for a label, with the tag encoding in front when `tag` is given.
pub fn encode_label(
    label: &StickerLabel,
    tag: Option<&TagWrite>,
    gf: GfEncoding,
) -> Result<ZplJob, LabelError> {
    if label.width == 0 || label.height == 0 || label.width > 32_000 || label.height > 32_000 {
        return Err(LabelError::BadLabel {
            detail: format!("size {}x{} dots is out of range", label.width, label.height),
        });
    }
    if label.copies == 0 || label.copies > 99_999_999 {
        return Err(LabelError::BadLabel { detail: format!("{} copies", label.copies) });
    }
    if tag.is_some() && label.copies != 1 {
        return Err(LabelError::BadLabel {
            detail: "an RFID label is printed one copy at a time (each tag is unique)".into(),
        });
    }
    let mut out = String::new();
    let _ = write!(out, "^XA^PW{}^LL{}^LH0,0", label.width, label.height);
    if let Some(tag) = tag {
        out.push_str(&rfid_commands(tag)?);
    }
    for element in &label.elements {
        match element {
            LabelElement::Bitmap { x, y, bitmap } => out.push_str(&graphic_field(*x, *y, bitmap, gf)),
            LabelElement::Qr { x, y, data, magnification, level } => {
                out.push_str(&qr_field(*x, *y, data, *magnification, *level)?)
            }
            LabelElement::Text { x, y, height, text } => {
                check_text(text)?;
                let h = (*height).clamp(10, 32_000);
                let _ = write!(out, "^FO{x},{y}^A0N,{h},{h}^FD{text}^FS");
            }
            LabelElement::Box { x, y, width, height, thickness } => {
                let t = (*thickness).clamp(1, 32_000);
                let w = (*width).max(t);
                let h = (*height).max(t);
                let _ = write!(out, "^FO{x},{y}^GB{w},{h},{t}^FS");
            }
        }
    }
    let _ = write!(out, "^PQ{}^XZ", label.copies);
    Ok(ZplJob { bytes: out.into_bytes() })
}

fn check_text(text: &str) -> Result<(), LabelError> {
    if text.bytes().all(|b| (0x20..0x7F).contains(&b) && b != b'^' && b != b'~') {
        Ok(())
    } else {
        Err(LabelError::BadText { text: text.to_string() })
    }
}

fn level_letter(level: QrLevel) -> char {
    match level {
        QrLevel::L => 'L',
        QrLevel::M => 'M',
        QrLevel::Q => 'Q',
        QrLevel::H => 'H',
    }
}

/// `^FOx,y^BQN,2,m,e^FD<e>A,<data>^FS`: QR model 2, magnification `m`, error correction `e`.
///
/// The guide's QR switches put the error correction level and the input mode in front of the
/// data (`^FDQA,…` = level Q, automatic input). Automatic input cannot carry bytes 0x80–0x9F and
/// 0xE0–0xFF; we accept printable ASCII only (our payloads are base64url) and no `^`/`~`, which
/// would end the field.
pub fn qr_field(x: u32, y: u32, data: &str, magnification: u8, level: QrLevel) -> Result<String, LabelError> {
    if !(1..=10).contains(&magnification) {
        return Err(LabelError::BadQr { detail: format!("magnification {magnification} (1 to 10)") });
    }
    if data.is_empty() {
        return Err(LabelError::BadQr { detail: "empty data".into() });
    }
    if data.len() > 4296 {
        return Err(LabelError::BadQr { detail: format!("{} characters is too long", data.len()) });
    }
    if !data.bytes().all(|b| (0x20..0x7F).contains(&b) && b != b'^' && b != b'~') {
        return Err(LabelError::BadQr {
            detail: "only printable ASCII without ^ and ~ in automatic input mode".into(),
        });
    }
    let e = level_letter(level);
    Ok(format!("^FO{x},{y}^BQN,2,{magnification},{e}^FD{e}A,{data}^FS"))
}

/// `^FOx,y^GFA,b,c,d,data^FS` for a bitmap, split into bands of at most [`GF_MAX_BYTES`].
///
/// `d` = bytes per row = ceil(width / 8), `c` = d × rows, and `b` = `c` ("for ASCII download the
/// parameter should match parameter c"), whether or not the data is compressed.
pub fn graphic_field(x: u32, y: u32, bitmap: &MonoBitmap, encoding: GfEncoding) -> String {
    let stride = bitmap.stride();
    if stride == 0 || bitmap.height() == 0 {
        return String::new();
    }
    let rows_per_band = (GF_MAX_BYTES / stride).max(1) as u32;
    let mut out = String::new();
    let mut top = 0u32;
    while top < bitmap.height() {
        let rows = rows_per_band.min(bitmap.height() - top);
        let band: Vec<&[u8]> = (top..top + rows).map(|r| bitmap.row(r)).collect();
        let total = stride * rows as usize;
        let data = match encoding {
            GfEncoding::Hex => hex_rows(&band),
            GfEncoding::Compressed => compress_rows(&band),
            GfEncoding::Auto => {
                let plain = hex_rows(&band);
                let packed = compress_rows(&band);
                if packed.len() < plain.len() { packed } else { plain }
            }
        };
        let _ = write!(out, "^FO{x},{}^GFA,{total},{total},{stride},{data}^FS", y + top);
        top += rows;
    }
    out
}

fn hex_rows(rows: &[&[u8]]) -> String {
    let mut s = String::with_capacity(rows.iter().map(|r| r.len() * 2).sum());
    for row in rows {
        s.push_str(&hex::encode_upper(row));
    }
    s
}

/// Compresses rows with the ZPL scheme: a run of n equal hex digits is written as a count then the
/// digit, where G–Y count 1–19 and g–z count 20–400 (they add up: `vMB` = 327 × `B`); `,` fills the
/// rest of the row with 0, `!` with F; `:` repeats the previous row.
pub fn compress_rows(rows: &[&[u8]]) -> String {
    let mut out = String::new();
    let mut previous: Option<&[u8]> = None;
    for row in rows {
        if previous == Some(*row) {
            out.push(':');
            continue;
        }
        previous = Some(row);
        let digits = hex::encode_upper(row).into_bytes();
        // A trailing run of 0 or F becomes `,` or `!` when that is shorter than writing it out.
        let last = digits.last().copied().unwrap_or(b'0');
        let trail = digits.iter().rev().take_while(|&&d| d == last).count();
        let (body, fill) = if (last == b'0' || last == b'F') && trail >= 2 {
            (&digits[..digits.len() - trail], Some(if last == b'0' { ',' } else { '!' }))
        } else {
            (&digits[..], None)
        };
        let mut i = 0;
        while i < body.len() {
            let d = body[i];
            let run = body[i..].iter().take_while(|&&c| c == d).count();
            push_run(&mut out, d as char, run);
            i += run;
        }
        if let Some(f) = fill {
            out.push(f);
        }
    }
    out
}

fn push_run(out: &mut String, digit: char, mut run: usize) {
    while run > 0 {
        let n = run.min(419);
        if n == 1 {
            out.push(digit);
        } else {
            let high = n / 20;
            let low = n % 20;
            if high > 0 {
                out.push((b'g' + (high - 1) as u8) as char);
            }
            if low > 0 {
                out.push((b'G' + (low - 1) as u8) as char);
            }
            out.push(digit);
        }
        run -= n;
    }
}

fn password_hex(p: &TagPassword) -> String {
    hex::encode_upper(p.expose())
}

/// The RFID part of a job: setup, TID read returned with `^HV`, EPC/user/password writes, lock,
/// EPC read-back returned with `^HV`.
fn rfid_commands(tag: &TagWrite) -> Result<String, LabelError> {
    let even = |name: &str, bytes: &[u8], max: usize| -> Result<(), LabelError> {
        if bytes.len() % 2 != 0 || bytes.len() > max {
            return Err(LabelError::BadTag {
                detail: format!("{name}: {} bytes (whole 16-bit words, at most {max})", bytes.len()),
            });
        }
        Ok(())
    };
    if tag.epc.is_empty() {
        return Err(LabelError::BadTag { detail: "EPC is empty".into() });
    }
    even("EPC", &tag.epc, 62)?;
    even("user memory", &tag.user, 512)?;
    let mut out = String::new();
    // ^RSt,p,v,n,e: Gen 2 tags, default position and void length, one label tried, then drop the
    // format (N) instead of retrying on the next label.
    out.push_str("^RS8,,,1,N");
    let tid_hex_len = TID_BYTES * 2;
    let _ = write!(
        out,
        "^RFR,H,0,{TID_BYTES},2^FN{TID_FIELD}^FS^FH_^HV{TID_FIELD},{tid_hex_len},{TID_HEADER},]_0D_0A,L^FS"
    );
    // EPC bank 1 from word 2 (bit address 20h, after CRC and PC).
    let _ = write!(out, "^RFW,H,2,{},1^FD{}^FS", tag.epc.len(), hex::encode_upper(&tag.epc));
    if !tag.user.is_empty() {
        let _ = write!(out, "^RFW,H,0,{},3^FD{}^FS", tag.user.len(), hex::encode_upper(&tag.user));
    }
    match (&tag.access_password, &tag.kill_password) {
        (Some(a), Some(k)) => {
            let _ = write!(out, "^RFW,H,P^FD{},{}^FS", password_hex(a), password_hex(k));
        }
        (Some(a), None) => {
            let _ = write!(out, "^RFW,H,P^FD{}^FS", password_hex(a));
        }
        (None, Some(k)) => {
            let _ = write!(out, "^RFW,H,P^FD,{}^FS", password_hex(k));
        }
        (None, None) => {}
    }
    match tag.lock {
        TagLock::Unchanged => {}
        TagLock::Lock => {
            // The guide: L and U need an access password other than the default 00000000.
            let ok = tag.access_password.as_ref().is_some_and(|p| p.expose() != [0; 4]);
            if !ok {
                return Err(LabelError::BadTag { detail: "locking needs a non-zero access password".into() });
            }
            out.push_str("^RLM,L,L,L,L^FS");
        }
        TagLock::Permalock => out.push_str("^RLM,P,P,P,P^FS"),
    }
    let epc_len = tag.epc.len();
    let _ = write!(
        out,
        "^RFR,H,2,{epc_len},1^FN{EPC_FIELD}^FS^FH_^HV{EPC_FIELD},{},{EPC_HEADER},]_0D_0A,L^FS",
        epc_len * 2
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(b: &MonoBitmap) -> Vec<&[u8]> {
        (0..b.height()).map(|y| b.row(y)).collect()
    }

    #[test]
    fn repeat_counts_follow_the_guide() {
        // Guide, "Alternative Data Compression Scheme for ~DG and ~DB Commands": M6 = 7 × '6',
        // hB = 40 × 'B', vMB = 327 × 'B'.
        let mut s = String::new();
        push_run(&mut s, '6', 7);
        assert_eq!(s, "M6");
        s.clear();
        push_run(&mut s, 'B', 40);
        assert_eq!(s, "hB");
        s.clear();
        push_run(&mut s, 'B', 327);
        assert_eq!(s, "vMB");
        s.clear();
        push_run(&mut s, 'A', 419);
        assert_eq!(s, "zYA");
        s.clear();
        push_run(&mut s, 'A', 420);
        assert_eq!(s, "zYAA");
    }

    #[test]
    fn line_codes() {
        let a = [0x12u8, 0x00, 0x00, 0x00];
        let b = [0xFFu8, 0xFF, 0xFF, 0xFF];
        let rows: Vec<&[u8]> = vec![&a, &a, &b, &[0, 0, 0, 0]];
        assert_eq!(compress_rows(&rows), "12,:!,");
    }

    #[test]
    fn gf_counts_for_odd_widths() {
        // 13 pixels wide → 2 bytes per row; 3 rows → 6 bytes.
        let bm = MonoBitmap::from_fn(13, 3, |x, _| x == 12);
        let f = graphic_field(5, 7, &bm, GfEncoding::Hex);
        assert_eq!(f, "^FO5,7^GFA,6,6,2,000800080008^FS");
        let c = graphic_field(5, 7, &bm, GfEncoding::Compressed);
        assert_eq!(c, "^FO5,7^GFA,6,6,2,I08::^FS");
        assert_eq!(compress_rows(&rows(&bm)), "I08::");
    }

    #[test]
    fn big_bitmaps_are_banded() {
        let bm = MonoBitmap::from_fn(8000, 120, |x, y| (x + y) % 3 == 0);
        let f = graphic_field(0, 0, &bm, GfEncoding::Hex);
        // 1000 bytes per row → 99 rows per band → two bands (99 + 21 rows).
        assert_eq!(f.matches("^GFA,99000,99000,1000,").count(), 1);
        assert_eq!(f.matches("^FO0,99^GFA,21000,21000,1000,").count(), 1);
    }

    #[test]
    fn qr_field_guide_form() {
        assert_eq!(
            qr_field(100, 100, "0123456789ABCD 2D code", 10, QrLevel::Q).unwrap(),
            "^FO100,100^BQN,2,10,Q^FDQA,0123456789ABCD 2D code^FS"
        );
        assert!(qr_field(0, 0, "x^y", 4, QrLevel::M).is_err());
        assert!(qr_field(0, 0, "مرحبا", 4, QrLevel::M).is_err());
        assert!(qr_field(0, 0, "x", 0, QrLevel::M).is_err());
    }

    #[test]
    fn redaction_hides_passwords_only() {
        let job = "^XA^RFW,H,P^FD12345678,88887777^FS^RFW,H,2,12,1^FD112233445566778899001122^FS^XZ";
        let r = redact(job);
        assert!(!r.contains("12345678") && !r.contains("88887777"), "{r}");
        assert!(r.contains("^RFW,H,P^FD********^FS"));
        assert!(r.contains("112233445566778899001122"), "EPC data is not secret");
    }
}
