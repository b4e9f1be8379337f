#![allow(dead_code)]
//! A PostgreSQL server of a test's own: `initdb` in a temporary directory
//! and `postgres` on a free loopback port, as the user `nobody` when the
//! tests run as root (PostgreSQL refuses root), stopped when dropped.
//! Shared by the collector's tests and the fleet tests (e2e includes this
//! file). The binaries come from `NG_PG_BIN`, the `PATH`, or Debian's
//! `/usr/lib/postgresql/<version>/bin` (`postgresql` package,
//! scripts/setup.sh).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Option<Child>,
    /// Extra `-c name=value` settings (TLS).
    settings: Vec<String>,
    bin: PathBuf,
    /// The temporary directory holding `data/` and `server.log`.
    dir: tempfile::TempDir,
    pub port: u16,
    /// `Some((uid, gid))` of `nobody` when running as root.
    user: Option<(u32, u32)>,
}

/// The directory of PostgreSQL's programs, if there is one.
fn bin_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("NG_PG_BIN") {
        return Some(PathBuf::from(d));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file());
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, d): &(u32, PathBuf)| d.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

/// `nobody`'s uid and gid, from /etc/passwd.
fn nobody() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"nobody")).then(|| (f[2].parse().ok(), f[3].parse().ok()))
        })
        .and_then(|(u, g)| Some((u?, g?)))
        .expect("a user `nobody` to run PostgreSQL as (it refuses root)")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Server {
    /// Starts a server, or says loudly why not and gives `None` (a panic
    /// when `NG_REQUIRE_POSTGRES` is set, as the test command sets it).
    pub fn start() -> Option<Server> {
        Self::start_with(false)
    }

    /// A server that takes TLS connections only (`hostssl` in pg_hba.conf),
    /// its certificate from a test CA: the server and the CA's file.
    pub fn start_tls() -> Option<(Server, PathBuf)> {
        let server = Self::start_with(true)?;
        let ca = server.dir().join("ca.pem");
        Some((server, ca))
    }

    fn start_with(tls: bool) -> Option<Server> {
        let Some(bin) = bin_dir() else {
            let why = "PostgreSQL (initdb, postgres) not found: install Debian's postgresql (scripts/setup.sh) or set NG_PG_BIN";
            assert!(std::env::var_os("NG_REQUIRE_POSTGRES").is_none(), "{why}");
            eprintln!("SKIP (PostgreSQL half): {why}");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("ng-pg")
            .tempdir()
            .expect("a temporary directory");
        let user = (effective_uid() == 0).then(nobody);
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("the data directory");
        if let Some((uid, gid)) = user {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).expect("chown the data directory");
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "netgazer", "--auth=trust", "-N", "-E", "UTF8", "--locale=C"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = user {
            initdb.uid(uid).gid(gid);
        }
        let out = initdb.output().expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut settings = Vec::new();
        if tls {
            let (_, cert, key) = super::certs::certificates(dir.path());
            if let Some((uid, gid)) = user {
                std::os::unix::fs::chown(&key, Some(uid), Some(gid)).expect("chown the key");
            }
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod the key");
            std::fs::write(data.join("pg_hba.conf"), "hostssl all all 127.0.0.1/32 trust\n").expect("pg_hba.conf");
            settings.extend([
                "ssl=on".to_string(),
                format!("ssl_cert_file={}", cert.display()),
                format!("ssl_key_file={}", key.display()),
            ]);
        }
        let mut server = Server {
            child: None,
            settings,
            bin,
            dir,
            port: free_port(),
            user,
        };
        server.run();
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts `postgres` on the data directory and waits until it answers.
    fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("the server's log");
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.data())
            .arg("-p")
            .arg(self.port.to_string())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ])
            .stdout(Stdio::null())
            .stderr(log);
        for s in &self.settings {
            cmd.arg("-c").arg(s);
        }
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        self.child = Some(cmd.spawn().expect("postgres starts"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Up once it answers, be it to refuse a plain connection
            // (a TLS-only server).
            match postgres::Client::connect(&self.url(), postgres::NoTls) {
                Ok(_) => return,
                Err(e) if e.as_db_error().is_some() => return,
                Err(_) => {}
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not answer within 30 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The connection string of the database `postgres` on this server.
    pub fn url(&self) -> String {
        format!("host=127.0.0.1 port={} user=netgazer dbname=postgres", self.port)
    }

    /// `[postgres]` for a collector's configuration.
    pub fn config(&self) -> String {
        format!("[postgres]\nurl = \"{}\"\n", self.url())
    }

    /// A client (the tests' own queries).
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).expect("a connection to the test's PostgreSQL")
    }

    /// Stops the server (fast shutdown: connections are cut) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same data and port.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Immediate shutdown: nothing to keep.
            let _ = Command::new("kill").arg("-QUIT").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

/// The effective user, without a libc dependency: the owner of a file
/// this process just made.
fn effective_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let f = tempfile::NamedTempFile::new().expect("a temporary file");
    f.as_file().metadata().expect("its metadata").uid()
}
