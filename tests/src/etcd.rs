//! Real etcd clusters for the fleet tests: Debian's `etcd-server`, started by the test on
//! loopback ports in a temporary directory (one member, or three for the quorum tests), stopped
//! and started again member by member, killed when the test ends.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The etcd binary (`ETCD_BIN`, else `etcd` on the PATH, else Debian's path).
pub fn etcd_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ETCD_BIN") {
        return Some(p.into());
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = std::path::Path::new(dir).join("etcd");
        if p.is_file() {
            return Some(p);
        }
    }
    let debian = PathBuf::from("/usr/bin/etcd");
    debian.is_file().then_some(debian)
}

/// A free loopback port (the listener is closed; etcd binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Debug)]
struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

/// A running cluster; every member is killed when it is dropped.
#[derive(Debug)]
pub struct Etcd {
    dir: tempfile::TempDir,
    bin: PathBuf,
    members: Vec<Member>,
    cluster: String,
}

impl Etcd {
    /// Starts `n` members and waits until the cluster answers writes. `None` (and the test
    /// skips, outside CI) without etcd.
    #[track_caller]
    pub fn start(n: usize) -> Option<Etcd> {
        let bin = etcd_bin();
        if !crate::prerequisite(bin.is_some(), "etcd (Debian package etcd-server)") {
            return None;
        }
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: free_port(),
                peer: free_port(),
                child: None,
            })
            .collect();
        let cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut etcd = Etcd {
            dir: tempfile::tempdir().unwrap(),
            bin: bin?,
            members,
            cluster,
        };
        for i in 0..n {
            etcd.start_member(i);
        }
        etcd.wait_ready();
        Some(etcd)
    }

    /// The client URLs, comma-separated (`NYMVISOR_FLEET_ETCD_ENDPOINTS`).
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts member `i` (again, on its data directory).
    pub fn start_member(&mut self, i: usize) {
        let dir = self.dir.path().join(&self.members[i].name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(
                self.dir
                    .path()
                    .join(format!("{}.log", self.members[i].name)),
            )
            .unwrap();
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let child = Command::new(&self.bin)
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "nymvisor-test"])
            // elections in a fraction of a second: the quorum tests wait less
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.members[i].child = Some(child);
    }

    /// Stops member `i` (SIGKILL: as a crashed or unreachable host).
    pub fn stop_member(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until a write through any endpoint succeeds (a leader is elected).
    #[track_caller]
    pub fn wait_ready(&self) {
        let ok = crate::wait_for(Duration::from_secs(30), || {
            self.members.iter().any(|m| {
                m.child.is_some()
                    && http_post(
                        m.client,
                        "/v3/kv/put",
                        r#"{"key":"cmVhZHk=","value":"MQ=="}"#,
                    )
                    .is_some_and(|body| body.contains("\"revision\""))
            })
        });
        assert!(ok, "etcd did not become ready; its logs:\n{}", self.logs());
    }

    /// Every member's log (for failure messages).
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let p = self.dir.path().join(format!("{}.log", m.name));
                format!(
                    "== {}\n{}",
                    m.name,
                    std::fs::read_to_string(p).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `POST path` with a JSON body to 127.0.0.1:`port`; the answer's body, if one came in time.
fn http_post(port: u16, path: &str, body: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.stop_member(i);
        }
    }
}
