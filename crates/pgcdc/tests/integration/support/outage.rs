//! A network outage between pgcdc and a test S3 server, at a chosen moment: an HTTP/1.1
//! proxy in front of the server ([`OutageProxy::start`]) that passes requests through
//! until it is armed, then lets the server *handle* the next matching request (e.g. the
//! put of a Delta log entry) but drops its answer, and goes down at once: its port
//! refuses connections and every open connection is cut, until [`OutageProxy::up`].
//!
//! That is what a store crashing right after a write looks like to a client — the case a
//! plain stop of the server only hits by luck. [`OutageProxy::arm_then_block`] makes the
//! outage partial instead: after the dropped answer only requests to some paths fail. Requests are parsed just enough to find
//! their ends (object_store sends bodies with `Content-Length`); answers are piped back
//! byte for byte.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A proxy listening on 127.0.0.1:`port` in front of 127.0.0.1:`upstream`.
pub struct OutageProxy {
    /// The proxy's port (the endpoint pgcdc is given).
    pub port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: u16,
    /// While armed: the method and a substring of the path whose answer is dropped.
    armed: Mutex<Option<(String, String)>>,
    /// Set when an answer was dropped (the proxy is down, or blocking, since).
    tripped: AtomicBool,
    down: AtomicBool,
    /// With the armed request: after it, cut only requests whose path contains this.
    block_after: Mutex<Option<String>>,
    /// Requests whose path contains this are cut (a partial outage).
    blocked: Mutex<Option<String>>,
    /// Open client connections, to cut them when going down.
    clients: Mutex<Vec<TcpStream>>,
}

impl OutageProxy {
    /// Starts passing requests through to the server on `upstream`.
    pub fn start(upstream: u16) -> OutageProxy {
        let port = super::free_port();
        let shared = Arc::new(Shared {
            upstream,
            armed: Mutex::new(None),
            tripped: AtomicBool::new(false),
            down: AtomicBool::new(false),
            block_after: Mutex::new(None),
            blocked: Mutex::new(None),
            clients: Mutex::new(Vec::new()),
        });
        shared.down.store(true, Ordering::SeqCst);
        let proxy = OutageProxy { port, shared };
        proxy.up();
        proxy
    }

    /// The endpoint URL for pgcdc's `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Drops the answer to the next `method` request whose path contains `path`, then
    /// goes down.
    pub fn arm(&self, method: &str, path: &str) {
        *self.shared.block_after.lock().unwrap() = None;
        self.shared.tripped.store(false, Ordering::SeqCst);
        *self.shared.armed.lock().unwrap() = Some((method.to_string(), path.to_string()));
    }

    /// Like [`OutageProxy::arm`], but after the dropped answer the proxy stays up and cuts
    /// only the requests whose path contains `blocked` (every open connection is cut once).
    pub fn arm_then_block(&self, method: &str, path: &str, blocked: &str) {
        self.arm(method, path);
        *self.shared.block_after.lock().unwrap() = Some(blocked.to_string());
    }

    /// Whether the armed request came and the proxy went down.
    pub fn tripped(&self) -> bool {
        self.shared.tripped.load(Ordering::SeqCst)
    }

    /// Listens again (after an outage, or at start).
    pub fn up(&self) {
        *self.shared.blocked.lock().unwrap() = None;
        if !self.shared.down.swap(false, Ordering::SeqCst) {
            return;
        }
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("bind the proxy port");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let shared = Arc::clone(&self.shared);
        std::thread::spawn(move || accept(listener, shared));
    }
}

impl Drop for OutageProxy {
    fn drop(&mut self) {
        self.shared.go_down();
    }
}

impl Shared {
    fn go_down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut_all();
    }

    fn cut_all(&self) {
        for c in self.clients.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// Accepts connections until the proxy goes down (then the listener closes: refused).
fn accept(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.down.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                if let Ok(c) = client.try_clone() {
                    shared.clients.lock().unwrap().push(c);
                }
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = serve(client, &shared);
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// One client connection: requests forwarded one by one, answers piped back.
fn serve(client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let upstream = TcpStream::connect(("127.0.0.1", shared.upstream))?;
    let swallow = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicBool::new(false));
    {
        let (mut from, mut to) = (upstream.try_clone()?, client.try_clone()?);
        let (swallow, answered) = (Arc::clone(&swallow), Arc::clone(&answered));
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if swallow.load(Ordering::SeqCst) {
                    answered.store(true, Ordering::SeqCst);
                    break;
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Both);
        });
    }
    let mut reader = BufReader::new(client.try_clone()?);
    let mut up = upstream;
    loop {
        let mut head = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            head.extend_from_slice(line.as_bytes());
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let first = String::from_utf8_lossy(&head)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        let mut words = first.split(' ');
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let cut = shared
            .blocked
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|b| path.contains(b.as_str()));
        if cut {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        let hit = {
            let mut armed = shared.armed.lock().unwrap();
            let hit = armed
                .as_ref()
                .is_some_and(|(m, p)| m == method && path.contains(p.as_str()));
            if hit {
                *armed = None;
            }
            hit
        };
        if hit {
            swallow.store(true, Ordering::SeqCst);
        }
        up.write_all(&head)?;
        up.write_all(&body)?;
        if hit {
            // The server handles the request; its answer never reaches the client.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !answered.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            match shared.block_after.lock().unwrap().take() {
                Some(b) => {
                    *shared.blocked.lock().unwrap() = Some(b);
                    shared.cut_all();
                }
                None => shared.go_down(),
            }
            shared.tripped.store(true, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}
