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

/// How a path is answered.
#[derive(Debug, Clone)]
pub enum Reply {
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

/// The server. Routes can be changed while it runs.
#[derive(Debug)]
pub struct FeedServer {
    pub port: u16,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl FeedServer {
    pub fn start() -> FeedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, h, s) = (routes.clone(), hits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (r, h, s) = (r.clone(), h.clone(), s.clone());
                        std::thread::spawn(move || serve(stream, &r, &h, &s));
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
        }
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
    hits: &Mutex<Vec<String>>,
    stop: &AtomicBool,
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
        // skip headers
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" || line == "\n" {
                break;
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_owned();
        hits.lock().unwrap().push(path.clone());
        // routes match the path without its query string
        let route = path.split('?').next().unwrap_or("/");
        let reply = routes
            .lock()
            .unwrap()
            .get(route)
            .cloned()
            .unwrap_or(Reply::Status(404));
        let keep_alive = matches!(
            reply,
            Reply::Body(_) | Reply::Status(_) | Reply::Redirect(_)
        );
        if write_reply(&mut stream, reply, stop).is_err() || !keep_alive {
            return;
        }
    }
}

fn write_reply(stream: &mut TcpStream, reply: Reply, stop: &AtomicBool) -> std::io::Result<()> {
    let head =
        |status: &str, len: usize| format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\n\r\n");
    match reply {
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
