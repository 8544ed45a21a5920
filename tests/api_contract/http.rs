//! A minimal blocking HTTP/1.1 client over `TcpStream` for the API tests: one request per
//! connection, chunked bodies decoded, and a server-sent-events reader.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The error code of an error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {}", self.json()))
            .to_owned()
    }
}

/// A request to send.
pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub token: Option<&'a str>,
    pub body: Option<&'a [u8]>,
    pub content_type: Option<&'a str>,
}

impl<'a> Req<'a> {
    pub fn new(method: &'a str, path: &'a str) -> Req<'a> {
        Req { method, path, token: None, body: None, content_type: None }
    }
    pub fn token(mut self, token: &'a str) -> Req<'a> {
        self.token = Some(token);
        self
    }
    pub fn json(mut self, body: &'a str) -> Req<'a> {
        self.body = Some(body.as_bytes());
        self.content_type = Some("application/json");
        self
    }
    pub fn raw(mut self, body: &'a [u8], content_type: Option<&'a str>) -> Req<'a> {
        self.body = Some(body);
        self.content_type = content_type;
        self
    }
}

fn write_request(stream: &mut TcpStream, addr: SocketAddr, req: &Req<'_>, close: bool) {
    let mut head = format!("{} {} HTTP/1.1\r\nHost: {addr}\r\n", req.method, req.path);
    if close {
        head.push_str("Connection: close\r\n");
    }
    if let Some(t) = req.token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(ct) = req.content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    let body = req.body.unwrap_or(b"");
    if req.body.is_some() || matches!(req.method, "POST" | "PUT") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
}

/// Reads the status line and headers.
fn read_head(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').expect("header line");
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    (status, headers)
}

/// Reads one chunk of a chunked body; `None` at the last chunk.
fn read_chunk(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let size = usize::from_str_radix(line.trim().split(';').next().unwrap(), 16)
        .unwrap_or_else(|_| panic!("bad chunk size {line:?}"));
    let mut data = vec![0; size + 2];
    reader.read_exact(&mut data).unwrap();
    data.truncate(size);
    (size > 0).then_some(data)
}

/// Sends `req` on a new connection and reads the whole response.
pub fn send(addr: SocketAddr, req: Req<'_>) -> Resp {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write_request(&mut stream, addr, &req, true);
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader);
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked"));
    let mut body = Vec::new();
    if chunked {
        while let Some(c) = read_chunk(&mut reader) {
            body.extend(c);
        }
    } else {
        reader.read_to_end(&mut body).unwrap();
    }
    Resp { status, headers, body }
}

/// An open event stream.
pub struct Events {
    reader: BufReader<TcpStream>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    buffered: String,
}

/// One server-sent event (comments are counted apart).
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub data: serde_json::Value,
}

impl Events {
    /// Opens `GET path` with an optional bearer token and reads the response head.
    pub fn open(addr: SocketAddr, path: &str, token: Option<&str>) -> Events {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut req = Req::new("GET", path);
        req.token = token;
        write_request(&mut stream, addr, &req, false);
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader);
        Events { reader, status, headers, buffered: String::new() }
    }

    /// The next event, skipping keep-alive comments; `None` when the server ends the stream.
    pub fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffered.find("\n\n") {
                let block: String = self.buffered.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a comment (keep-alive)
                }
                let data = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("event data not JSON ({e}): {data}"));
                return Some(SseEvent { event, data });
            }
            let chunk = read_chunk(&mut self.reader)?;
            self.buffered.push_str(&String::from_utf8(chunk).expect("UTF-8 events"));
        }
    }
}
