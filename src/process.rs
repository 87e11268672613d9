//! Child processes the way a long-running tool needs them: own process group, null stdin,
//! both pipes drained on threads (a full pipe never deadlocks the child), bounded capture,
//! and a timeout or Ctrl-C that kills the whole group (TERM, a grace period, then KILL).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a signalled group gets to exit (while its pipes are still drained) before KILL.
const DEFAULT_GRACE: Duration = Duration::from_secs(3);
/// How often the wait loop looks at the child, the clock and the cancel flag.
const POLL: Duration = Duration::from_millis(20);
/// Captured bytes kept from the start of a stream.
const HEAD_BYTES: usize = 256 * 1024;
/// Captured bytes kept from the end of a stream (where test summaries live).
const TAIL_BYTES: usize = 4 * 1024 * 1024;

/// A flag that Ctrl-C sets; long operations poll it and stop their children.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks every operation that holds this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What to run, where, for how long.
#[derive(Clone, Debug)]
pub struct ProcessSpec {
    /// Program name or path.
    pub program: OsString,
    /// Arguments, passed as they are (no shell).
    pub args: Vec<OsString>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Variables added to (or replacing in) the inherited environment.
    pub env: Vec<(OsString, OsString)>,
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Time between TERM and KILL.
    pub grace: Duration,
    /// Bytes written to the child's standard input, which is then closed; `None`: /dev/null.
    pub stdin: Option<Vec<u8>>,
}

impl ProcessSpec {
    /// A spec for `program` in `cwd` with the given timeout.
    pub fn new(program: impl Into<OsString>, cwd: &Path, timeout: Duration) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            cwd: cwd.to_path_buf(),
            env: Vec::new(),
            timeout,
            grace: DEFAULT_GRACE,
            stdin: None,
        }
    }

    /// A spec that runs `command` through `sh -c`, so quoting, pipes and `&&` work.
    pub fn shell(command: &str, cwd: &Path, timeout: Duration) -> Self {
        let mut spec = Self::new("sh", cwd, timeout);
        spec.args = vec!["-c".into(), command.into()];
        spec
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds one environment variable.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// How a finished process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// It was ended by this signal.
    Signal(i32),
}

impl Exit {
    /// True for exit code 0.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// Why the process stopped, besides its own choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// It ended by itself.
    Exited,
    /// We killed it at the timeout.
    TimedOut,
    /// We killed it because the user pressed Ctrl-C.
    Cancelled,
}

/// Everything a finished process left behind.
#[derive(Clone, Debug)]
pub struct ProcessOutput {
    /// Its exit code or signal.
    pub exit: Exit,
    /// Whether it ended alone, at the timeout, or on Ctrl-C.
    pub stop: Stop,
    /// Captured standard output (head and tail kept when very large).
    pub stdout: String,
    /// Captured standard error (head and tail kept when very large).
    pub stderr: String,
    /// Wall-clock time.
    pub duration: Duration,
}

/// A process that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The program is not on PATH or not at the given path.
    #[error("start `{program}`: not found")]
    NotFound {
        /// The program asked for.
        program: String,
    },
    /// Any other reason.
    #[error("start `{program}`")]
    Other {
        /// The program asked for.
        program: String,
        /// The operating system's answer.
        #[source]
        source: std::io::Error,
    },
}

/// Runs a process to its end, its timeout or cancellation, capturing both streams.
pub fn run(spec: &ProcessSpec, cancel: &CancelToken) -> Result<ProcessOutput, SpawnError> {
    let program = spec.program.to_string_lossy().into_owned();
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .current_dir(&spec.cwd)
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: Ctrl-C in the terminal reaches us only, and we can kill the
        // child together with everything it started.
        .process_group(0);
    for (key, value) in &spec.env {
        command.env(key, value);
    }
    tracing::debug!(
        "spawn {program} {} in {}",
        spec.args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        spec.cwd.display()
    );
    let started = Instant::now();
    let mut child = command.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SpawnError::NotFound {
                program: program.clone(),
            }
        } else {
            SpawnError::Other {
                program: program.clone(),
                source,
            }
        }
    })?;
    let pgid = child.id() as i32;
    if let (Some(input), Some(mut pipe)) = (spec.stdin.clone(), child.stdin.take()) {
        // On its own thread: a child that does not read must not block us; a child that
        // exits early makes the write fail, which is its business, not ours.
        thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&input);
        });
    }
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let stdout = drain(child.stdout.take(), done_tx.clone());
    let stderr = drain(child.stderr.take(), done_tx);

    let (exit, stop) = wait(&mut child, pgid, spec, cancel, started);
    // The child is gone; anything it left in its group would hold our pipes open.
    signal_group(pgid, libc::SIGTERM);
    let mut remaining = 2;
    let mut readers_done = wait_readers(&done_rx, &mut remaining, spec.grace);
    if !readers_done {
        signal_group(pgid, libc::SIGKILL);
        readers_done = wait_readers(&done_rx, &mut remaining, Duration::from_secs(1));
    }
    Ok(ProcessOutput {
        exit,
        stop,
        stdout: collect(stdout, readers_done),
        stderr: collect(stderr, readers_done),
        duration: started.elapsed(),
    })
}

fn wait(
    child: &mut Child,
    pgid: i32,
    spec: &ProcessSpec,
    cancel: &CancelToken,
    started: Instant,
) -> (Exit, Stop) {
    let mut stop = Stop::Exited;
    let mut termed_at: Option<Instant> = None;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (exit_of(status), stop),
            Ok(None) => {}
            // The child can no longer be waited for; treat it as killed.
            Err(_) => return (Exit::Signal(libc::SIGKILL), stop),
        }
        match termed_at {
            None => {
                if cancel.is_cancelled() {
                    stop = Stop::Cancelled;
                } else if started.elapsed() >= spec.timeout {
                    stop = Stop::TimedOut;
                }
                if stop != Stop::Exited {
                    signal_group(pgid, libc::SIGTERM);
                    termed_at = Some(Instant::now());
                }
            }
            Some(at) if at.elapsed() >= spec.grace => {
                signal_group(pgid, libc::SIGKILL);
                let status = child.wait();
                return (
                    status.map(exit_of).unwrap_or(Exit::Signal(libc::SIGKILL)),
                    stop,
                );
            }
            Some(_) => {}
        }
        thread::sleep(POLL);
    }
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Code(-1),
    }
}

fn signal_group(pgid: i32, signal: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals a process group; it has no memory
        // effects, and ESRCH (group already gone) is expected and ignored.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// Waits until `remaining` readers said they are done (counting them down), or `limit`.
fn wait_readers(done: &mpsc::Receiver<()>, remaining: &mut usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while *remaining > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match done.recv_timeout(left) {
            Ok(()) => *remaining -= 1,
            Err(mpsc::RecvTimeoutError::Disconnected) => return true,
            Err(mpsc::RecvTimeoutError::Timeout) => return false,
        }
    }
    true
}

/// Bytes of one stream: the first `HEAD_BYTES`, and a ring of the last `TAIL_BYTES`.
#[derive(Default)]
struct Capture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    dropped: usize,
}

impl Capture {
    fn push(&mut self, mut bytes: &[u8]) {
        if self.head.len() < HEAD_BYTES {
            let take = bytes.len().min(HEAD_BYTES - self.head.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        self.tail.extend(bytes);
        if self.tail.len() > TAIL_BYTES {
            let excess = self.tail.len() - TAIL_BYTES;
            self.tail.drain(..excess);
            self.dropped += excess;
        }
    }

    fn into_string(self) -> String {
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if self.dropped > 0 {
            text.push_str(&format!("\n[... {} bytes not kept ...]\n", self.dropped));
        }
        let tail: Vec<u8> = self.tail.into_iter().collect();
        text.push_str(&String::from_utf8_lossy(&tail));
        text
    }
}

type Reader = Option<thread::JoinHandle<Capture>>;

fn drain(stream: Option<impl Read + Send + 'static>, done: mpsc::Sender<()>) -> Reader {
    let mut stream = stream?;
    Some(thread::spawn(move || {
        let mut capture = Capture::default();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => capture.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = done.send(());
        capture
    }))
}

/// What a reader captured. `all_done`: every reader said it is done, so each is about to
/// return and joining cannot block (a reader that signalled may not have *returned* yet, so
/// `is_finished` alone would drop its output).
fn collect(reader: Reader, all_done: bool) -> String {
    match reader {
        // A reader still blocked (a grandchild outlived KILL) is left behind; what it read
        // so far is lost rather than hanging the whole tool.
        Some(handle) if all_done || handle.is_finished() => {
            handle.join().map(Capture::into_string).unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// Finds `program` the way the shell would: a path with a slash as it is, otherwise on PATH.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return is_executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Serializes a duration as whole milliseconds.
pub fn ser_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// Keeps the last `lines` lines of `text`.
pub fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(cmd: &str, timeout_ms: u64) -> ProcessOutput {
        let dir = std::env::temp_dir();
        let mut spec = ProcessSpec::shell(cmd, &dir, Duration::from_millis(timeout_ms));
        spec.grace = Duration::from_millis(300);
        run(&spec, &CancelToken::new()).unwrap()
    }

    /// Regression: a reader that had signalled "done" but not yet returned lost its whole
    /// capture, so an agent's result line sometimes vanished on a busy machine.
    #[test]
    fn output_is_never_lost_when_the_child_exits_at_once() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..100 {
                        let out = sh("echo out; echo err >&2", 5000);
                        assert_eq!(
                            (out.stdout.as_str(), out.stderr.as_str()),
                            ("out\n", "err\n")
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn captures_both_streams_and_exit_code() {
        let out = sh("echo out; echo err >&2; exit 3", 5000);
        assert_eq!(out.exit, Exit::Code(3));
        assert_eq!(out.stop, Stop::Exited);
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[test]
    fn timeout_kills_the_whole_group_including_grandchildren() {
        let marker = tempfile::NamedTempFile::new().unwrap();
        let path = marker.path().display().to_string();
        // The grandchild would write the marker after 2 s if it survived the kill.
        let out = sh(&format!("(sleep 2; echo alive > '{path}') & sleep 30"), 300);
        assert_eq!(out.stop, Stop::TimedOut);
        assert!(out.duration < Duration::from_secs(5), "{:?}", out.duration);
        thread::sleep(Duration::from_millis(2500));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn term_ignoring_child_is_killed_after_grace() {
        let out = sh("trap '' TERM; sleep 30", 200);
        assert_eq!(out.stop, Stop::TimedOut);
        assert_eq!(out.exit, Exit::Signal(libc::SIGKILL));
    }

    #[test]
    fn cancel_stops_the_child() {
        let cancel = CancelToken::new();
        let flag = cancel.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            flag.cancel();
        });
        let spec = ProcessSpec::shell("sleep 30", &std::env::temp_dir(), Duration::from_secs(60));
        let out = run(&spec, &cancel).unwrap();
        assert_eq!(out.stop, Stop::Cancelled);
    }

    #[test]
    fn large_output_keeps_head_and_tail_without_deadlock() {
        let out = sh("seq 1 2000000; echo THE-END", 60000);
        assert!(out.stdout.starts_with("1\n2\n"));
        assert!(out.stdout.trim_end().ends_with("THE-END"));
        assert!(out.stdout.contains("bytes not kept"));
    }

    #[test]
    fn missing_program_is_not_found() {
        let spec = ProcessSpec::new(
            "definitely-not-a-real-program-xyz",
            &std::env::temp_dir(),
            Duration::from_secs(1),
        );
        assert!(matches!(
            run(&spec, &CancelToken::new()),
            Err(SpawnError::NotFound { .. })
        ));
    }
}
