//! A misbehaving HTTP server on 127.0.0.1 for the source tests.
//!
//! Hand-written on `std::net` on purpose: the hostile cases (a body longer than its
//! Content-Length, a stalled or trickling body, an endless body) are exactly what well-behaved
//! server libraries refuse to produce. Each connection is served by a thread; the server stops
//! when dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    /// Path with the query string.
    pub path: String,
    /// Header names in lower case, values as sent.
    pub headers: Vec<(String, String)>,
    /// When it arrived.
    pub at: std::time::SystemTime,
}

impl Request {
    /// The value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter's value.
    pub fn query(&self, key: &str) -> Option<&str> {
        let (_, query) = self.path.split_once('?')?;
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == key).then_some(v)
        })
    }
}

/// Computes a reply from the request.
pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// How a path is answered.
#[derive(Clone)]
pub enum Reply {
    /// Any status, headers and body.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Whatever the handler answers for this request.
    Func(Handler),
    /// 200 with this body.
    Body(Vec<u8>),
    /// This status with a short text body.
    Status(u16),
    /// 302 to this location.
    Redirect(String),
    /// Headers, then a few bytes, then nothing for `secs` seconds.
    Stall(u64),
    /// The body, one byte every `ms` milliseconds.
    Trickle(Vec<u8>, u64),
    /// Chunked transfer that never ends.
    Endless,
    /// Content-Length says `declared` but `body` (longer) is sent.
    Overlong { body: Vec<u8>, declared: usize },
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Full { status, .. } => write!(f, "Full({status})"),
            Reply::Func(_) => f.write_str("Func"),
            Reply::Body(b) => write!(f, "Body({} bytes)", b.len()),
            Reply::Status(c) => write!(f, "Status({c})"),
            Reply::Redirect(l) => write!(f, "Redirect({l})"),
            Reply::Stall(s) => write!(f, "Stall({s})"),
            Reply::Trickle(b, ms) => write!(f, "Trickle({}, {ms})", b.len()),
            Reply::Endless => f.write_str("Endless"),
            Reply::Overlong { declared, .. } => write!(f, "Overlong({declared})"),
        }
    }
}

/// The server. Routes can be changed while it runs.
#[derive(Debug)]
pub struct FeedServer {
    pub port: u16,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    /// Answers paths without a route from this directory (a static file server).
    root: Arc<Mutex<Option<std::path::PathBuf>>>,
}

impl FeedServer {
    pub fn start() -> FeedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let hits: Arc<Mutex<Vec<Request>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let root: Arc<Mutex<Option<std::path::PathBuf>>> = Arc::default();
        let (r, h, s, d) = (routes.clone(), hits.clone(), stop.clone(), root.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (r, h, s, d) = (r.clone(), h.clone(), s.clone(), d.clone());
                        std::thread::spawn(move || serve(stream, &r, &h, &s, &d));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FeedServer {
            port,
            routes,
            hits,
            stop,
            root,
        }
    }

    /// Serves the files of `dir` (read at each request) for paths without a route, as any
    /// static web server would; 404 for anything else.
    pub fn serve_dir(&self, dir: &std::path::Path) {
        *self.root.lock().unwrap() = Some(dir.to_owned());
    }

    /// `http://127.0.0.1:<port>`
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn route(&self, path: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(path.to_owned(), reply);
    }

    /// Paths requested so far.
    pub fn hits(&self) -> Vec<String> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.path.clone())
            .collect()
    }

    /// Requests received so far, with their headers.
    pub fn requests(&self) -> Vec<Request> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(
    mut stream: TcpStream,
    routes: &Mutex<HashMap<String, Reply>>,
    hits: &Mutex<Vec<Request>>,
    stop: &AtomicBool,
    root: &Mutex<Option<std::path::PathBuf>>,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_owned();
        let request = Request {
            path: path.clone(),
            headers,
            at: std::time::SystemTime::now(),
        };
        // routes match the path without its query string
        let route = path.split('?').next().unwrap_or("/");
        let mut reply = routes
            .lock()
            .unwrap()
            .get(route)
            .cloned()
            .unwrap_or_else(|| from_dir(root, route));
        if let Reply::Func(f) = &reply {
            reply = f(&request);
        }
        hits.lock().unwrap().push(request);
        let keep_alive = matches!(
            reply,
            Reply::Body(_) | Reply::Status(_) | Reply::Redirect(_) | Reply::Full { .. }
        );
        if write_reply(&mut stream, reply, stop).is_err() || !keep_alive {
            return;
        }
    }
}

/// A file of the served directory, or 404 (never outside it).
fn from_dir(root: &Mutex<Option<std::path::PathBuf>>, path: &str) -> Reply {
    let Some(root) = root.lock().unwrap().clone() else {
        return Reply::Status(404);
    };
    let rel = path.trim_start_matches('/');
    if rel.split('/').any(|c| c == ".." || c.is_empty()) {
        return Reply::Status(404);
    }
    match std::fs::read(root.join(rel)) {
        Ok(body) => Reply::Body(body),
        Err(_) => Reply::Status(404),
    }
}

fn write_reply(stream: &mut TcpStream, reply: Reply, stop: &AtomicBool) -> std::io::Result<()> {
    let head =
        |status: &str, len: usize| format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\n\r\n");
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} Whatever\r\n");
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            // a 304 has no body, and says so by omitting the length
            if status != 304 {
                head.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes())?;
            stream.write_all(&body)
        }
        // resolved before writing
        Reply::Func(_) => stream.write_all(head("500 Internal", 0).as_bytes()),
        Reply::Body(body) => {
            stream.write_all(head("200 OK", body.len()).as_bytes())?;
            stream.write_all(&body)
        }
        Reply::Status(code) => {
            let body = format!("status {code}");
            stream.write_all(head(&format!("{code} Whatever"), body.len()).as_bytes())?;
            stream.write_all(body.as_bytes())
        }
        Reply::Redirect(location) => stream.write_all(
            format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        ),
        Reply::Stall(secs) => {
            stream.write_all(head("200 OK", 1_000_000).as_bytes())?;
            stream.write_all(b"\x7fELF")?;
            for _ in 0..secs * 10 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        }
        Reply::Trickle(body, ms) => {
            stream.write_all(head("200 OK", body.len()).as_bytes())?;
            for b in body {
                stream.write_all(&[b])?;
                std::thread::sleep(Duration::from_millis(ms));
            }
            Ok(())
        }
        Reply::Endless => {
            stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            let chunk = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::SeqCst) {
                stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                stream.write_all(&chunk)?;
                stream.write_all(b"\r\n")?;
            }
            Ok(())
        }
        Reply::Overlong { body, declared } => {
            stream.write_all(head("200 OK", declared).as_bytes())?;
            stream.write_all(&body)
        }
    }
}

/// Lower-case hex sha256 of a file.
pub fn sha256_file(path: &std::path::Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// An `upgrade-info.json` offering `version` under `name` for this machine's platform.
pub fn upgrade_info(
    name: &str,
    version: &str,
    url: &str,
    checksum: &str,
    algorithm: &str,
) -> serde_json::Value {
    let platform = format!(
        "{}-{}",
        if std::env::consts::OS == "macos" {
            "darwin"
        } else {
            std::env::consts::OS
        },
        std::env::consts::ARCH
    );
    serde_json::json!({
        "manual": false,
        "name": name,
        "notes": "test release",
        "publishDate": "2026-01-01T00:00:00Z",
        "version": version,
        "platforms": { platform: { "checksum": checksum, "checksumAlgorithm": algorithm, "url": url } },
        "upgradeTime": "2026-01-01T00:00:00Z",
        "binaryDetails": null
    })
}
