//! Readiness notification for systemd (`Type=notify`): `READY=1` once the server answers,
//! `STOPPING=1` when it begins to shut down, sent as datagrams to `$NOTIFY_SOCKET` (a path,
//! or a name in Linux's abstract namespace when it starts with `@`). Without the variable
//! nothing is sent. A failure to send is logged and otherwise ignored: the server runs on
//! (systemd then reports the start as timed out).

use std::future::Future;
use std::os::unix::net::UnixDatagram;

/// The socket named by `$NOTIFY_SOCKET`, if set.
pub struct Notifier {
    target: String,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`; `None` when it is unset or empty.
    pub fn from_env() -> Option<Notifier> {
        std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|t| !t.is_empty())
            .map(|target| Notifier { target })
    }

    /// Sends one state message (`READY=1`), logging a failure.
    pub fn send(&self, state: &str) {
        if let Err(e) = self.try_send(state) {
            tracing::warn!(socket = %self.target, error = %e, state, "cannot notify the service manager");
        }
    }

    fn try_send(&self, state: &str) -> std::io::Result<usize> {
        let socket = UnixDatagram::unbound()?;
        match self.target.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                socket.send_to_addr(state.as_bytes(), &addr)
            }
            None => socket.send_to(state.as_bytes(), &self.target),
        }
    }
}

/// Wraps the server's shutdown future: `READY=1` is sent when it is first polled, `STOPPING=1`
/// when it resolves. `profiled::serve` polls it only once the store is open and the accept
/// loop runs on the bound listener, so that is when the server is ready; a start that fails
/// never sends `READY=1`.
pub async fn around_shutdown(notifier: Option<Notifier>, shutdown: impl Future<Output = ()>) {
    if let Some(n) = &notifier {
        n.send("READY=1");
    }
    shutdown.await;
    if let Some(n) = &notifier {
        n.send("STOPPING=1");
    }
}
