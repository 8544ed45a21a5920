//! The simulator's own ZPL reading, written from the guide independently of the driver's builder:
//! a command tokenizer (binary `^GFB` data read by its byte count), the `^GF` decoder (ASCII hex
//! with the guide's compression scheme, `:Z64:`/`:B64:`, binary) and the parameter shapes of the
//! commands the simulator accepts.

/// One ZPL command: prefix (`^` or `~`), code (`XA`, `GF`, `A` …) and its raw parameter text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// `b'^'` (format command) or `b'~'` (control command).
    pub prefix: u8,
    /// Upper-case command code; `A` for the font command `^Af…`.
    pub code: String,
    /// Everything up to the next `^` or `~` (lossy UTF-8).
    pub params: String,
    /// The same parameter bytes, unaltered (binary `^GFB` data may hold any byte).
    pub raw: Vec<u8>,
}

fn no_params(prefix: u8, code: &str) -> bool {
    matches!((prefix, code), (b'^', "XA") | (b'^', "XZ") | (b'~', "HS") | (b'~', "HI") | (b'~', "JA"))
}

/// Splits a byte stream into complete commands; returns them and how many bytes were used.
/// Bytes between commands (CR, LF, stray text) are skipped; an unfinished command stays unused.
pub fn tokenize(buf: &[u8]) -> (Vec<Command>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let Some(start) = buf[pos..].iter().position(|&b| b == b'^' || b == b'~').map(|p| p + pos) else {
            return (out, buf.len());
        };
        let prefix = buf[start];
        let Some(&c1) = buf.get(start + 1) else { return (out, start) };
        let c1 = c1.to_ascii_uppercase();
        let (code, params_at) = if prefix == b'^' && c1 == b'A' {
            // ^A is followed directly by the font name (^A0N,30,30).
            ("A".to_string(), start + 2)
        } else {
            let Some(&c2) = buf.get(start + 2) else { return (out, start) };
            let code = String::from_utf8_lossy(&[c1, c2.to_ascii_uppercase()]).into_owned();
            (code, start + 3)
        };
        if no_params(prefix, &code) {
            out.push(Command { prefix, code, params: String::new(), raw: Vec::new() });
            pos = params_at;
            continue;
        }
        let end = if prefix == b'^' && code == "GF" {
            match binary_gf_end(buf, params_at) {
                GfEnd::Binary(end) => Some(end),
                GfEnd::NeedMore => return (out, start),
                GfEnd::Text => None,
            }
        } else {
            None
        };
        let end = match end {
            Some(e) => e,
            None => {
                let Some(e) = buf[params_at.min(buf.len())..].iter().position(|&b| b == b'^' || b == b'~')
                else {
                    return (out, start);
                };
                params_at + e
            }
        };
        let raw = buf[params_at..end].to_vec();
        let params = String::from_utf8_lossy(&raw).into_owned();
        out.push(Command { prefix, code, params, raw });
        pos = end;
    }
}

enum GfEnd {
    /// Binary data: the command ends at this offset, whatever bytes it holds.
    Binary(usize),
    /// The header or the data is not all here yet.
    NeedMore,
    /// ASCII data (or a header that is not binary): ends at the next `^` or `~`.
    Text,
}

/// For `^GFB`/`^GFC`, where the data is `b` raw bytes after the fourth comma.
fn binary_gf_end(buf: &[u8], at: usize) -> GfEnd {
    let rest = &buf[at.min(buf.len())..];
    match rest.first().map(u8::to_ascii_uppercase) {
        Some(b'B' | b'C') => {}
        Some(_) => return GfEnd::Text,
        None => return GfEnd::NeedMore,
    }
    let mut commas = Vec::new();
    for (i, &b) in rest.iter().enumerate() {
        if b == b',' {
            commas.push(i);
            if commas.len() == 4 {
                break;
            }
        } else if b == b'^' || b == b'~' || i > 40 {
            return GfEnd::Text;
        }
    }
    if commas.len() < 4 {
        return GfEnd::NeedMore;
    }
    let Some(count) = std::str::from_utf8(&rest[commas[0] + 1..commas[1]])
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|n| (1..=99_999).contains(n))
    else {
        return GfEnd::Text;
    };
    let end = at + commas[3] + 1 + count;
    if end > buf.len() { GfEnd::NeedMore } else { GfEnd::Binary(end) }
}

/// A decoded `^GF` graphic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graphic {
    /// Bytes per row (`d`).
    pub bytes_per_row: usize,
    /// Rows (`c / d`).
    pub rows: usize,
    /// `c` bytes of packed rows, 1 = black.
    pub data: Vec<u8>,
}

/// Decodes the parameters of `^GF` (`a,b,c,d,data`) given as text (ASCII forms only).
pub fn decode_gf(params: &str) -> Result<Graphic, String> {
    decode_gf_bytes(params.as_bytes())
}

/// CRC the `:Z64:`/`:B64:` forms carry after the data: CRC-16/XMODEM of the base64 text, as
/// four hex digits (what the independent `zplgrf` encoder writes).
const GF_CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// Decodes `:Z64:<base64 of zlib data>:<crc>` or `:B64:<base64>:<crc>` into exactly `c` bytes.
fn decode_base64_gf(text: &str, c: usize) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    use std::io::Read as _;
    let zlib = text.starts_with(":Z64:");
    let body = text[5..].trim_end_matches(['\r', '\n', ' ']);
    let (b64, crc) = body.rsplit_once(':').ok_or("^GF: :Z64:/:B64: data without its :crc")?;
    let want = u16::from_str_radix(crc, 16).map_err(|_| format!("^GF: CRC {crc:?} is not 4 hex digits"))?;
    let got = GF_CRC.checksum(b64.as_bytes());
    if crc.len() != 4 || got != want {
        return Err(format!("^GF: CRC {crc} does not match the data ({got:04X})"));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("^GF: base64 data: {e}"))?;
    let data = if zlib {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(raw.as_slice())
            .take(c as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("^GF: :Z64: data does not inflate: {e}"))?;
        out
    } else {
        raw
    };
    if data.len() != c {
        return Err(format!("^GF: data holds {} bytes, c says {c}", data.len()));
    }
    Ok(data)
}

/// Decodes the parameters of `^GF` (`a,b,c,d,data`): `A` (ASCII hex, the guide's compression
/// scheme, `:Z64:`/`:B64:`) or `B` (binary, `b` bytes). `C` (Zebra's unpublished compressed
/// binary) is refused.
pub fn decode_gf_bytes(params: &[u8]) -> Result<Graphic, String> {
    let mut parts = params.splitn(5, |&b| b == b',');
    let field = |p: Option<&[u8]>| p.map(|v| String::from_utf8_lossy(v).trim().to_string());
    let a = field(parts.next()).unwrap_or_default();
    let num = |s: Option<String>, name: &str| -> Result<usize, String> {
        let s = s.ok_or(format!("^GF: missing {name}"))?;
        let n: usize = s.parse().map_err(|_| format!("^GF: {name} {s:?} is not a number"))?;
        if n == 0 || n > 99_999 {
            return Err(format!("^GF: {name} {n} outside 1 to 99999"));
        }
        Ok(n)
    };
    let b = num(field(parts.next()), "b (binary byte count)")?;
    let c = num(field(parts.next()), "c (graphic field count)")?;
    let d = num(field(parts.next()), "d (bytes per row)")?;
    let data = parts.next().ok_or("^GF: missing data")?;
    if c % d != 0 {
        return Err(format!("^GF: c ({c}) is not a whole number of {d}-byte rows"));
    }
    match a.as_str() {
        "A" => {}
        "B" => {
            if b != c || data.len() != b {
                return Err(format!("^GF: binary data of {} bytes, b = {b}, c = {c}", data.len()));
            }
            return Ok(Graphic { bytes_per_row: d, rows: c / d, data: data.to_vec() });
        }
        "C" => return Err("^GF: compressed binary (C) not simulated: its scheme is not published".into()),
        other => return Err(format!("^GF: compression type {other:?} unknown (A, B or C)")),
    }
    let data = std::str::from_utf8(data).map_err(|_| "^GF: ASCII data holds non-ASCII bytes".to_string())?;
    // For ASCII data the guide says b "should match" c; encoders send the character count
    // instead (the `zpl` package does), and printers print them, so b is not checked here.
    let _ = b;
    if data.starts_with(":Z64:") || data.starts_with(":B64:") {
        let bytes = decode_base64_gf(data, c)?;
        return Ok(Graphic { bytes_per_row: d, rows: c / d, data: bytes });
    }
    let rows = c / d;
    let row_nibbles = d * 2;
    let mut out: Vec<u8> = Vec::with_capacity(c);
    let mut row: Vec<u8> = Vec::with_capacity(row_nibbles);
    let mut done_rows = 0usize;
    let mut count = 0usize;
    let push_row = |row: &mut Vec<u8>, out: &mut Vec<u8>, done: &mut usize| {
        for pair in row.chunks(2) {
            out.push((pair[0] << 4) | pair.get(1).copied().unwrap_or(0));
        }
        row.clear();
        *done += 1;
    };
    for ch in data.chars() {
        if done_rows == rows {
            break; // "Any numbers sent after count is satisfied are ignored."
        }
        match ch {
            '\r' | '\n' | ' ' => {}
            'G'..='Y' => count += (ch as usize) - ('G' as usize) + 1,
            'g'..='z' => count += ((ch as usize) - ('g' as usize) + 1) * 20,
            ',' | '!' => {
                let v = if ch == ',' { 0 } else { 15 };
                row.resize(row_nibbles, v);
                push_row(&mut row, &mut out, &mut done_rows);
                count = 0;
            }
            ':' => {
                if !row.is_empty() || done_rows == 0 {
                    return Err("^GF: ':' (repeat line) not at the start of a line after one".into());
                }
                let prev = out[out.len() - d..].to_vec();
                out.extend_from_slice(&prev);
                done_rows += 1;
                count = 0;
            }
            _ => {
                let v = ch.to_digit(16).ok_or(format!("^GF: unexpected character {ch:?}"))? as u8;
                let mut n = count.max(1);
                count = 0;
                while n > 0 && done_rows < rows {
                    let take = n.min(row_nibbles - row.len());
                    row.extend(std::iter::repeat_n(v, take));
                    n -= take;
                    if row.len() == row_nibbles {
                        push_row(&mut row, &mut out, &mut done_rows);
                    }
                }
            }
        }
    }
    if done_rows < rows {
        return Err(format!("^GF: data covers {done_rows} of {rows} rows"));
    }
    Ok(Graphic { bytes_per_row: d, rows, data: out })
}

/// Checks the parameters of a format command the simulator accepts but does not draw, against
/// the shape the guide gives it: `n` an optional whole number, `i` an optional signed number,
/// `f` an optional decimal, `o` an optional orientation (N R I B), `y` optional Y/N, `c` one
/// optional character, `*` anything (free text). `None`: the command is not one the simulator
/// knows.
fn shape(code: &str) -> Option<&'static str> {
    Some(match code {
        "FO" | "FT" => "n,n,n",
        "LH" => "n,n",
        "LL" | "PW" | "FN" => "n",
        "LS" | "LT" => "i",
        "PQ" => "n,n,n,y,y",
        "CF" => "c,n,n",
        "FS" | "FR" => "",
        "FH" => "c",
        "FX" | "FD" | "PR" | "MN" | "MM" | "CI" | "RF" | "RS" | "RL" | "HV" => "*",
        "GB" => "n,n,n,c,n",
        "GC" => "n,n,c",
        "GD" => "n,n,n,c,c",
        "GE" => "n,n,n,c",
        "BY" => "n,f,n",
        "BC" => "o,n,y,y,y,c",
        "B3" => "o,y,n,y,y",
        "BQ" => "o,n,n,c,n",
        "FB" => "n,n,i,c,n",
        "FW" => "o,n",
        "MD" => "f",
        "MT" | "PO" => "c",
        "LR" => "y",
        _ => return None,
    })
}

/// Checks a format command (prefix `^`) other than `^A`, `^GF`, `^XA`, `^XZ` against the shape
/// the guide gives it; the error says which parameter is wrong.
pub fn check_params(code: &str, params: &str) -> Result<(), String> {
    let spec = shape(code).ok_or_else(|| format!("^{code}: unknown command"))?;
    if spec == "*" {
        return Ok(());
    }
    let kinds: Vec<&str> = if spec.is_empty() { Vec::new() } else { spec.split(',').collect() };
    let values: Vec<&str> = if params.trim().is_empty() { Vec::new() } else { params.split(',').collect() };
    if values.len() > kinds.len() {
        return Err(format!("^{code}: {} parameters, at most {} allowed", values.len(), kinds.len()));
    }
    for (i, (v, k)) in values.iter().zip(&kinds).enumerate() {
        let v = v.trim();
        let ok = v.is_empty()
            || match *k {
                "n" => v.len() <= 5 && v.bytes().all(|b| b.is_ascii_digit()),
                "i" => v.strip_prefix('-').unwrap_or(v).parse::<u32>().is_ok() && v.len() <= 6,
                "f" => v.parse::<f64>().is_ok_and(f64::is_finite) && v.len() <= 8,
                "o" => matches!(v, "N" | "R" | "I" | "B"),
                "y" => matches!(v, "Y" | "N"),
                _ => v.chars().count() == 1,
            };
        if !ok {
            return Err(format!("^{code}: parameter {} {v:?} is not valid", i + 1));
        }
    }
    Ok(())
}

/// Checks `^A` (`^Afo,h,w` or `^A@o,h,w,d:f.x`): font name, orientation, height and width.
pub fn check_font(params: &str) -> Result<(), String> {
    let mut chars = params.chars();
    let font = chars.next().ok_or("^A: font name missing")?;
    if !(font.is_ascii_alphanumeric() || font == '@') {
        return Err(format!("^A: font name {font:?} is not valid"));
    }
    let rest: String = chars.collect();
    let fields: Vec<&str> = rest.split(',').collect();
    if !matches!(fields[0].trim(), "" | "N" | "R" | "I" | "B") {
        return Err(format!("^A{font}: orientation {:?} is not valid", fields[0]));
    }
    let numbers = if font == '@' { fields.len().min(3) } else { fields.len() };
    if fields.len() > if font == '@' { 4 } else { 3 } {
        return Err(format!("^A{font}: too many parameters"));
    }
    for f in &fields[1..numbers] {
        let f = f.trim();
        if !(f.is_empty() || (f.len() <= 5 && f.bytes().all(|b| b.is_ascii_digit()))) {
            return Err(format!("^A{font}: size {f:?} is not a number"));
        }
    }
    Ok(())
}

/// Decodes `^FH` escapes (`_` followed by two hex digits) in `text`.
pub fn field_hex(text: &str, escape: char) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] as char == escape {
            let value = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|s| u8::from_str_radix(s, 16).ok());
            if let Some(v) = value {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let (cmds, used) = tokenize(b"^XA^FO10,20^A0N,30,30^FDHi^FS~HS^XZ^FO1");
        let codes: Vec<_> = cmds.iter().map(|c| c.code.as_str()).collect();
        assert_eq!(codes, ["XA", "FO", "A", "FD", "FS", "HS", "XZ"]);
        assert_eq!(cmds[2].params, "0N,30,30");
        assert_eq!(used, 35, "the unfinished ^FO1 is kept");
    }

    #[test]
    fn guide_compression_examples() {
        // ~DG/~DB compression section: vMB = 327 × 'B', M6 = 7 × '6' (one 167-byte row).
        let g = decode_gf("A,167,167,167,vMBM6").unwrap();
        assert!(g.data[..163].iter().all(|&b| b == 0xBB));
        assert_eq!(g.data[163], 0xB6);
        assert_eq!(&g.data[164..], &[0x66, 0x66, 0x66]);
        let g = decode_gf("A,6,6,2,F,!:").unwrap();
        assert_eq!(g.data, [0xF0, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(decode_gf("A,6,6,2,F0").is_err());
        assert!(decode_gf("A,6,5,2,F0F0F0").is_err(), "c not whole rows");
        assert!(decode_gf("B,6,6,2,").is_err(), "binary data missing");
        assert!(decode_gf("C,6,6,2,abcdef").is_err(), "compressed binary not simulated");
        assert!(decode_gf("A,6,6,2,F0F0F0G").is_err(), "data too short for c");
    }

    #[test]
    fn binary_graphic_is_read_by_its_count() {
        // ^GFB data may hold '^' and '~' bytes: the tokenizer must not split there.
        let mut job = b"^XA^FO1,2^GFB,4,4,2,".to_vec();
        job.extend_from_slice(&[b'^', b'~', 0x00, 0xFF]);
        job.extend_from_slice(b"^FS^XZ");
        let (cmds, used) = tokenize(&job[..job.len() - 8]);
        assert_eq!(cmds.len(), 2, "incomplete binary data waits for more");
        assert_eq!(used, 9, "up to the start of ^GF");
        let (cmds, _) = tokenize(&job);
        let gf = cmds.iter().find(|c| c.code == "GF").unwrap();
        let g = decode_gf_bytes(&gf.raw).unwrap();
        assert_eq!(g.data, [b'^', b'~', 0x00, 0xFF]);
        assert_eq!(cmds.last().unwrap().code, "XZ");
    }

    #[test]
    fn z64_graphic_with_crc() {
        use base64::Engine as _;
        use std::io::Write as _;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&[0xF0, 0x0F, 0xFF, 0x00]).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap());
        let crc = GF_CRC.checksum(b64.as_bytes());
        let g = decode_gf(&format!("A,4,4,2,:Z64:{b64}:{crc:04X}")).unwrap();
        assert_eq!((g.rows, g.data), (2, vec![0xF0, 0x0F, 0xFF, 0x00]));
        let e = decode_gf(&format!("A,4,4,2,:Z64:{b64}:{:04X}", crc ^ 1)).unwrap_err();
        assert!(e.contains("CRC"), "{e}");
        assert!(decode_gf(&format!("A,6,6,2,:Z64:{b64}:{crc:04X}")).unwrap_err().contains("c says 6"));
    }

    #[test]
    fn parameter_shapes() {
        assert!(check_params("FO", "50,50").is_ok());
        assert!(check_params("FO", "50,x").unwrap_err().contains("parameter 2"));
        assert!(check_params("FO", "1,2,0,9").is_err());
        assert!(check_params("QQ", "").unwrap_err().contains("unknown"));
        assert!(check_params("BY", "2,3.0,10").is_ok());
        assert!(check_font("0N,50,50").is_ok());
        assert!(check_font("@N,50,50,E:ARIAL.TTF").is_ok());
        assert!(check_font("0N,5x").is_err());
    }

    #[test]
    fn hex_escapes() {
        assert_eq!(field_hex("]_0D_0A", '_'), b"]\r\n");
        assert_eq!(field_hex("a_zz", '_'), b"a_zz");
    }
}
