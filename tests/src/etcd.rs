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
    /// Serves clients over TLS, with client certificates required.
    tls: Option<Tls>,
}

/// A CA made for the test, the servers' certificate (for 127.0.0.1) and a client's.
#[derive(Debug, Clone)]
pub struct Tls {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// Runs `openssl args…` in `dir`; panics with its output if it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Tls {
    /// Makes the certificates in `dir` with the real `openssl` tool.
    pub fn make(dir: &std::path::Path) -> Tls {
        std::fs::create_dir_all(dir).unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec![
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=nymvisor test CA",
        ];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
        openssl(dir, &ca);
        for (name, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            let mut req = vec!["req", "-subj"];
            // no CN for the client: with authentication on, etcd's JSON gateway refuses a
            // client certificate that carries one (the user is the identity)
            let subj = if name == "client" {
                "/O=nymvisor".to_owned()
            } else {
                format!("/CN={name}")
            };
            req.push(&subj);
            req.extend(ec);
            let (key, csr, crt, extfile) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
                format!("{name}.ext"),
            );
            req.extend(["-keyout", &key, "-out", &csr]);
            openssl(dir, &req);
            std::fs::write(dir.join(&extfile), ext).unwrap();
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-days",
                    "2",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &crt,
                    "-extfile",
                    &extfile,
                ],
            );
        }
        Tls {
            ca: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
        }
    }
}

impl Etcd {
    /// Starts `n` members and waits until the cluster answers writes. `None` (and the test
    /// skips, outside CI) without etcd.
    #[track_caller]
    pub fn start(n: usize) -> Option<Etcd> {
        Etcd::start_with(n, false)
    }

    /// One member serving clients over TLS (client certificates required), with the
    /// certificates made for it.
    #[track_caller]
    pub fn start_tls() -> Option<Etcd> {
        Etcd::start_with(1, true)
    }

    #[track_caller]
    fn start_with(n: usize, tls: bool) -> Option<Etcd> {
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
        let dir = tempfile::tempdir().unwrap();
        let tls = tls.then(|| Tls::make(&dir.path().join("tls")));
        let mut etcd = Etcd {
            dir,
            bin: bin?,
            members,
            cluster,
            tls,
        };
        for i in 0..n {
            etcd.start_member(i);
        }
        etcd.wait_ready();
        Some(etcd)
    }

    /// The certificates, for a cluster started with [`Etcd::start_tls`].
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The client URLs, comma-separated (`NYMVISOR_FLEET_ETCD_ENDPOINTS`).
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}://127.0.0.1:{}", self.scheme(), m.client))
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
        let client = format!("{}://127.0.0.1:{}", self.scheme(), m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let mut cmd = Command::new(&self.bin);
        if let Some(t) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&t.server_cert)
                .arg("--key-file")
                .arg(&t.server_key)
                .arg("--trusted-ca-file")
                .arg(&t.ca)
                .arg("--client-cert-auth");
        }
        let child = cmd
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
            // etcd's defaults: shorter timeouts elect spuriously on a loaded machine
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
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
        let mut last = String::new();
        let ok = crate::wait_for(Duration::from_secs(30), || {
            if self.tls.is_some() {
                let out = self.etcdctl(&["put", "ready", "1"]);
                last = String::from_utf8_lossy(&out.stderr).into_owned();
                return out.status.success();
            }
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
        assert!(
            ok,
            "etcd did not become ready ({last}); its logs:\n{}",
            self.logs()
        );
    }

    /// `etcdctl args…` against the cluster (as root, with the client certificate when TLS is
    /// on), for setting up users and roles as an operator would.
    pub fn etcdctl(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(self.endpoints())
            .args(["--dial-timeout", "2s", "--command-timeout", "5s"]);
        if let Some(t) = &self.tls {
            cmd.arg("--cacert")
                .arg(&t.ca)
                .arg("--cert")
                .arg(&t.client_cert)
                .arg("--key")
                .arg(&t.client_key);
        }
        cmd.args(args).output().unwrap()
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
