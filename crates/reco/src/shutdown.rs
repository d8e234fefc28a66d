//! Shutdown on SIGINT or SIGTERM: the first signal starts a graceful stop; a second one
//! exits at once, for when a graceful stop itself hangs.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Returns a token that is cancelled at the first SIGINT/SIGTERM.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            warn!("cannot install signal handlers; stop with SIGKILL");
            return;
        };
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        info!("shutting down (send the signal again to exit immediately)");
        trigger.cancel();
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        warn!("second signal: exiting without a graceful stop");
        std::process::exit(130);
    });
    token
}
