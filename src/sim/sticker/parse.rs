//! The simulator's own ZPL reading, written from the guide independently of the driver's builder:
//! a command tokenizer and the `^GFA` decoder (plain and compressed ASCII hex).

/// One ZPL command: prefix (`^` or `~`), code (`XA`, `GF`, `A` …) and its raw parameter text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// `b'^'` (format command) or `b'~'` (control command).
    pub prefix: u8,
    /// Upper-case command code; `A` for the font command `^Af…`.
    pub code: String,
    /// Everything up to the next `^` or `~`.
    pub params: String,
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
            out.push(Command { prefix, code, params: String::new() });
            pos = params_at;
            continue;
        }
        let Some(end) = buf[params_at.min(buf.len())..].iter().position(|&b| b == b'^' || b == b'~') else {
            return (out, start);
        };
        let end = params_at + end;
        let params = String::from_utf8_lossy(&buf[params_at..end]).into_owned();
        out.push(Command { prefix, code, params });
        pos = end;
    }
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

/// Decodes the parameters of `^GF` (`a,b,c,d,data`). Only `A` (ASCII hex, optionally with the
/// compression scheme) is understood.
pub fn decode_gf(params: &str) -> Result<Graphic, String> {
    let mut parts = params.splitn(5, ',');
    let a = parts.next().unwrap_or("").trim();
    let num = |s: Option<&str>, name: &str| -> Result<usize, String> {
        let s = s.ok_or(format!("^GF: missing {name}"))?.trim();
        let n: usize = s.parse().map_err(|_| format!("^GF: {name} {s:?} is not a number"))?;
        if n == 0 || n > 99_999 {
            return Err(format!("^GF: {name} {n} outside 1 to 99999"));
        }
        Ok(n)
    };
    if a != "A" {
        return Err(format!("^GF: compression type {a:?} not simulated (only A)"));
    }
    let b = num(parts.next(), "b (binary byte count)")?;
    let c = num(parts.next(), "c (graphic field count)")?;
    let d = num(parts.next(), "d (bytes per row)")?;
    let data = parts.next().ok_or("^GF: missing data")?;
    if b != c {
        return Err(format!("^GF: for ASCII data b ({b}) must match c ({c})"));
    }
    if c % d != 0 {
        return Err(format!("^GF: c ({c}) is not a whole number of {d}-byte rows"));
    }
    if data.starts_with(":Z64:") || data.starts_with(":B64:") {
        return Err("^GF: :Z64:/:B64: data not simulated".into());
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
        assert!(decode_gf("A,6,4,2,F0F0F0").is_err());
        assert!(decode_gf("B,6,6,2,").is_err());
    }

    #[test]
    fn hex_escapes() {
        assert_eq!(field_hex("]_0D_0A", '_'), b"]\r\n");
        assert_eq!(field_hex("a_zz", '_'), b"a_zz");
    }
}
