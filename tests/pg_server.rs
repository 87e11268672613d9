//! A throwaway PostgreSQL server for tests and benches: `initdb` into a temporary directory
//! (as `nobody` when run as root, since initdb refuses root), `pg_ctl start` on a free
//! loopback port with its unix socket in that directory, password authentication over TCP,
//! stopped (`pg_ctl stop -m immediate`) on drop.
//!
//! The binaries are found in `PROMPTLOOP_TEST_PG_BIN`, `/usr/lib/postgresql/<newest>/bin`
//! (Debian's `postgresql` package) or on PATH. None found fails the caller, unless
//! `PROMPTLOOP_TEST_ALLOW_NO_POSTGRES=1`, when [`PgServer::start`] says so and returns `None`.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The superuser's password (kept in a variable: URLs name it as `${…}`).
pub const PASSWORD_ENV: &str = "PROMPTLOOP_TEST_PG_PASSWORD";

/// A running server.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// The superuser `postgres`'s password.
    pub password: String,
    as_nobody: bool,
}

fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PROMPTLOOP_TEST_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl PgServer {
    /// Starts a server, or `None` when PostgreSQL is not installed and
    /// `PROMPTLOOP_TEST_ALLOW_NO_POSTGRES=1`; panics when it is missing otherwise.
    pub fn start() -> Option<PgServer> {
        let Some(bin) = find_bin() else {
            if std::env::var("PROMPTLOOP_TEST_ALLOW_NO_POSTGRES").as_deref() == Ok("1") {
                eprintln!(
                    "SKIPPED: no PostgreSQL (initdb, pg_ctl) found and \
                     PROMPTLOOP_TEST_ALLOW_NO_POSTGRES=1: the PostgreSQL test did not run"
                );
                return None;
            }
            panic!(
                "no PostgreSQL found (initdb and pg_ctl in PROMPTLOOP_TEST_PG_BIN, \
                 /usr/lib/postgresql/*/bin or PATH): `apt-get install -y postgresql`, or set \
                 PROMPTLOOP_TEST_ALLOW_NO_POSTGRES=1 to skip these tests"
            );
        };
        let dir = tempfile::Builder::new()
            .prefix("promptloop-pg-")
            .tempdir()
            .expect("temp dir");
        let as_nobody = is_root();
        if as_nobody {
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).expect("chown");
        }
        let password = format!("pw-{}-{}", std::process::id(), free_port());
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).expect("pwfile");
        if as_nobody {
            std::os::unix::fs::chown(&pwfile, Some(65534), Some(65534)).expect("chown");
        }
        let server = PgServer {
            dir,
            bin,
            port: free_port(),
            password,
            as_nobody,
        };
        let data = server.data_dir();
        let out = server.pg(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        server.start_again();
        Some(server)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the server's programs (as `nobody` when we are root), in the temp dir.
    fn pg(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_nobody {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()))
    }

    /// Starts the server (again, after [`PgServer::stop`]) and waits until it accepts.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let out = self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir().display().to_string(),
                "-l",
                &log.display().to_string(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server at once (its clients see the connection drop).
    pub fn stop(&self) {
        let _ = self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir().display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// A URL for database `db` whose password is read from [`PASSWORD_ENV`].
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:${{{PASSWORD_ENV}}}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// The variables that point the binary at database `db`: `PROMPTLOOP_STORE_URL` and
    /// the password the URL refers to.
    pub fn store_env(&self, db: &str) -> [(&'static str, String); 2] {
        [
            ("PROMPTLOOP_STORE_URL", self.url(db)),
            (PASSWORD_ENV, self.password.clone()),
        ]
    }

    /// A URL with the password written in it (for the redaction tests).
    pub fn url_with_password(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}?sslmode=disable",
            self.password, self.port
        )
    }

    /// The environment lookup that resolves [`PgServer::url`]'s password.
    pub fn env(&self) -> impl Fn(&str) -> Option<String> + use<> {
        let password = self.password.clone();
        move |k: &str| (k == PASSWORD_ENV).then(|| password.clone())
    }

    /// A superuser connection to database `db`.
    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .password(&self.password)
            .dbname(db)
            .connect(postgres::NoTls)
            .expect("connect to the test server")
    }

    /// Creates database `name` and returns its URL.
    pub fn create_db(&self, name: &str) -> String {
        self.client("postgres")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        self.url(name)
    }

    /// The server's directory (its log is `server.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
