//! Helpers for the app tests: child processes with bounded waits, temp dirs, test files.

use crossbeam_channel::{Receiver, RecvTimeoutError};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A child process, killed if still running when dropped.
pub struct Proc {
    pub child: Child,
    name: String,
}

impl Proc {
    /// Spawns `cmd` (which inherits the caller's network namespace).
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            child,
            name: name.into(),
        }
    }

    /// Waits for the exit (a pidfd becomes readable when it happens), killing the process and
    /// failing after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        // SAFETY: pidfd_open on the pid of a child we own and have not reaped.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, self.child.id() as libc::pid_t, 0) };
        assert!(raw >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor we own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
        let mut fds = [libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one live pollfd.
        if unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) } <= 0 {
            let _ = self.child.kill();
            panic!("{} did not exit within {timeout:?}", self.name);
        }
        self.child.wait().expect("wait")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill with the pid of a child we own and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines `r` produces, read on a thread.
pub fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (bounded) for a line containing `needle`; returns it.
pub fn expect_line(rx: &Receiver<String>, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(e) => panic!("no line with {needle:?} ({e:?}); got {seen:?}"),
        }
    }
}

/// Everything left on `rx` until its writer closes it (bounded).
pub fn rest(rx: &Receiver<String>, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut out = String::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                out.push_str(&line);
                out.push('\n');
            }
            Err(RecvTimeoutError::Disconnected) => return out,
            Err(RecvTimeoutError::Timeout) => panic!("output did not end; got:\n{out}"),
        }
    }
}

/// The chunks `r` produces, read on a thread; the channel closes at EOF.
pub fn chunks(mut r: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Polls `ss` until something listens on TCP `port` (bounded).
pub fn wait_for_tcp_listener(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let filter = format!("sport = :{port}");
    while Instant::now() < deadline {
        let out = Command::new("ss")
            .args(["-ltnH", &filter])
            .output()
            .expect("ss");
        if !out.stdout.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing listens on port {port} after {timeout:?}");
}

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("tapstack-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `len` bytes of deterministic data to `path` in 1 MiB pieces; returns its sha256.
pub fn write_pattern_file(path: &Path, len: usize, salt: u8) -> String {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut h = Sha256::new();
    let mut left = len;
    let mut i = 0u8;
    while left > 0 {
        let piece = super::common::pattern(left.min(1 << 20), salt ^ i);
        f.write_all(&piece).expect("write");
        h.update(&piece);
        left -= piece.len();
        i = i.wrapping_add(1);
    }
    f.flush().expect("flush");
    format!("{:x}", h.finalize())
}

pub fn file_sha256(path: &Path) -> String {
    let mut f = std::fs::File::open(path).expect("open");
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).expect("read");
    format!("{:x}", h.finalize())
}
