//! The stop signals (SIGTERM, SIGINT), watched on a thread of their own with its own small
//! runtime, so that a stop is heard however busy or stuck the node's runtime is. The first
//! signal asks the node to stop; if it has not stopped within [`STOP_DEADLINE`], or a second
//! signal comes, the process ends at once: a stop always finishes in bounded time.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a stopping node lets requests and transfers in progress finish.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Longest a stop may take before the process ends regardless: the node itself gives
/// in-flight work [`STOP_GRACE`], and its clean-up needs a few seconds more.
pub const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// Exit status of a stop that had to be forced.
pub const FORCED_STOP_EXIT_CODE: i32 = 1;

/// Starts watching for stop signals; the first one cancels `stop`.
pub fn watch(stop: CancellationToken) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // Registered before the thread starts, so that no signal between the two goes unheard.
    let mut signals = runtime.block_on(async { StopSignals::register() })?;
    std::thread::Builder::new().name("stop-signals".into()).spawn(move || {
        runtime.block_on(async move {
            signals.next().await;
            tracing::info!("stop signal received");
            stop.cancel();
            tokio::select! {
                () = signals.next() => tracing::warn!("second stop signal: stopping at once"),
                () = tokio::time::sleep(STOP_DEADLINE) => {
                    tracing::error!(deadline = ?STOP_DEADLINE, "the node did not stop in time; stopping at once");
                }
            }
            std::process::exit(FORCED_STOP_EXIT_CODE);
        })
    })?;
    Ok(())
}

/// SIGTERM (what service managers send) and SIGINT (Ctrl-C).
struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// The next stop signal.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}
