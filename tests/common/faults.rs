//! A fault-injecting TCP proxy: relays every connection it accepts on a free loopback port to
//! a target port, and applies the network faults a test sets at run time (a blackhole, a cut
//! after some bytes with a FIN or an RST, latency, a bandwidth limit) until it heals them. It
//! counts the bytes relayed each way, so tests can also measure what a transfer cost.

use super::proxy::Front;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How a cut connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// An orderly close (FIN), as a peer or a middlebox closing the connection.
    Fin,
    /// An abortive close (RST: `SO_LINGER` 0, then close), as a middlebox forgetting it.
    Reset,
}

/// What the proxy does to the traffic it relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Relays everything as it comes.
    None,
    /// Keeps the connections (and accepts new ones) but relays nothing either way, as across
    /// a network partition: TCP delivers what was sent once the network heals, so the bytes
    /// held back are relayed after the heal, and a connection accepted meanwhile reaches the
    /// target only then.
    Blackhole,
    /// Ends each connection once it carried `after` more bytes (both ways together, counted
    /// from when the fault was set): an open connection is cut in the middle of whatever it
    /// carries; with 0, at once.
    Cut { after: u64, ending: Ending },
    /// Holds each byte back this long in each direction.
    Latency(Duration),
    /// Each direction of each connection carries at most this many bytes per second.
    Bandwidth(u64),
}

impl Fault {
    /// Resets every connection (open ones and new ones) at once.
    pub const RESET: Fault = Fault::Cut {
        after: 0,
        ending: Ending::Reset,
    };
}

/// What every connection of one proxy shares: the current fault with the number of times it
/// was set (its generation), and counters.
struct Shared {
    fault: watch::Sender<(u64, Fault)>,
    /// Bytes relayed from clients to the target.
    up: AtomicU64,
    /// Bytes relayed from the target to clients.
    down: AtomicU64,
    /// Connections accepted.
    connections: AtomicU64,
    /// Connections ended by a [`Fault::Cut`].
    cuts: AtomicU64,
}

/// A proxy to one port; stops (and drops its connections' listener) when dropped.
pub struct FaultProxy {
    front: Front,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// A clean proxy to the loopback `target` port.
    pub async fn start(target: u16) -> Self {
        let shared = Arc::new(Shared {
            fault: watch::Sender::new((0, Fault::None)),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
        });
        let serving = shared.clone();
        let front = Front::start(move |client, _| relay(client, target, serving.clone())).await;
        Self { front, shared }
    }

    pub fn port(&self) -> u16 {
        self.front.port
    }

    /// Applies `fault` from now on, to open connections and new ones.
    pub fn set(&self, fault: Fault) {
        self.shared.fault.send_modify(|(generation, current)| {
            *generation += 1;
            *current = fault;
        });
    }

    /// Relays cleanly again.
    pub fn heal(&self) {
        self.set(Fault::None);
    }

    /// Bytes relayed from the target to clients so far.
    pub fn bytes_down(&self) -> u64 {
        self.shared.down.load(Ordering::SeqCst)
    }

    /// Bytes relayed from clients to the target so far.
    pub fn bytes_up(&self) -> u64 {
        self.shared.up.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections a [`Fault::Cut`] ended so far.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }
}

/// How one direction of a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Its sender closed; the close was passed on.
    Eof,
    /// A read or write failed (a peer went away or reset).
    Broken,
    /// A [`Fault::Cut`] ended the connection.
    Cut(Ending),
}

/// What a [`Fault::Cut`] still lets one connection carry, shared by its two directions.
struct Budget {
    /// (generation of the fault it was computed for, bytes carried since).
    carried: Mutex<(u64, u64)>,
}

impl Budget {
    /// How many of `wanted` bytes may still pass under `fault` (set at `generation`), and
    /// the ending once they did, when the cut is due.
    fn take(&self, generation: u64, fault: Fault, wanted: u64) -> (u64, Option<Ending>) {
        let Fault::Cut { after, ending } = fault else {
            return (wanted, None);
        };
        let mut carried = self.carried.lock().unwrap();
        if carried.0 != generation {
            *carried = (generation, 0);
        }
        let allowed = wanted.min(after.saturating_sub(carried.1));
        carried.1 += allowed;
        let cut = (carried.1 >= after).then_some(ending);
        (allowed, cut)
    }
}

/// Relays one accepted connection to `target` under the proxy's faults until it ends.
async fn relay(mut client: TcpStream, target: u16, shared: Arc<Shared>) {
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let mut faults = shared.fault.subscribe();
    // During a blackhole the target does not hear of the connection until the heal.
    if faults.wait_for(|(_, f)| *f != Fault::Blackhole).await.is_err() {
        return;
    }
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let budget = Budget {
        carried: Mutex::new((0, 0)),
    };
    let ending = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(client_read, server_write, &shared, &shared.up, &budget);
        let down = pump(server_read, client_write, &shared, &shared.down, &budget);
        tokio::pin!(up, down);
        // A close in one direction leaves the other open (a half-close) until it ends too.
        tokio::select! {
            end = &mut up => if end == End::Eof { down.await } else { end },
            end = &mut down => if end == End::Eof { up.await } else { end },
        }
    };
    let End::Cut(how) = ending else {
        return;
    };
    shared.cuts.fetch_add(1, Ordering::SeqCst);
    match how {
        // Closing with a zero linger sends an RST instead of a FIN.
        Ending::Reset => {
            let _ = (client.set_zero_linger(), server.set_zero_linger());
        }
        // A FIN each way; then what the peers still send is read and dropped until they
        // close too, as closing with unread bytes would send an RST instead.
        Ending::Fin => {
            let _ = tokio::join!(client.shutdown(), server.shutdown());
            let draining = async { tokio::join!(discard(&mut client), discard(&mut server)) };
            let _ = tokio::time::timeout(Duration::from_secs(10), draining).await;
        }
    }
}

/// Reads and drops what `stream` sends until it closes.
async fn discard(stream: &mut TcpStream) {
    let mut sink = [0u8; 16 * 1024];
    while matches!(stream.read(&mut sink).await, Ok(read) if read > 0) {}
}

/// Relays one direction, `from` to `to`, under the current fault, adding what it relayed to
/// `counter`. Reading and writing are separate loops joined by a queue, so that latency
/// delays the bytes without slowing their flow.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    shared: &Shared,
    counter: &AtomicU64,
    budget: &Budget,
) -> End {
    // Bytes read and when they may be written; `None` is the sender's close.
    let (queue, mut queued) = mpsc::channel::<(Instant, Option<Vec<u8>>)>(16);
    let reading_faults = shared.fault.subscribe();
    let reading = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = match from.read(&mut buffer).await {
                Ok(read) => read,
                Err(_) => return End::Broken,
            };
            let delay = match reading_faults.borrow().1 {
                Fault::Latency(delay) => delay,
                _ => Duration::ZERO,
            };
            let bytes = (read > 0).then(|| buffer[..read].to_vec());
            if queue.send((Instant::now() + delay, bytes)).await.is_err() || read == 0 {
                // The writing loop ends the direction.
                return std::future::pending().await;
            }
        }
    };
    let mut faults = shared.fault.subscribe();
    let writing = async move {
        loop {
            let (due, bytes) = tokio::select! {
                item = queued.recv() => match item {
                    Some(item) => item,
                    None => return End::Broken,
                },
                changed = faults.changed() => {
                    if changed.is_err() {
                        return End::Broken;
                    }
                    // A cut with nothing left to carry ends an idle connection too.
                    let (generation, fault) = *faults.borrow_and_update();
                    if let (0, Some(ending)) = budget.take(generation, fault, 0) {
                        return End::Cut(ending);
                    }
                    continue;
                }
            };
            if !passable(&mut faults, due).await {
                return End::Broken;
            }
            let Some(bytes) = bytes else {
                let _ = to.shutdown().await;
                return End::Eof;
            };
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                // A limited bandwidth writes a twentieth of a second's worth at a time, so
                // that the flow stays even and a blackhole stops it between two slices.
                if !passable(&mut faults, due).await {
                    return End::Broken;
                }
                let (generation, fault) = *faults.borrow_and_update();
                let slice = match fault {
                    Fault::Bandwidth(rate) => usize::try_from(rate / 20).unwrap_or(usize::MAX).max(1),
                    _ => rest.len(),
                };
                let (allowed, cut) = budget.take(generation, fault, slice.min(rest.len()) as u64);
                let (now, rest_after) = rest.split_at(allowed as usize);
                let started = Instant::now();
                let written = to.write_all(now).await.is_ok();
                counter.fetch_add(allowed, Ordering::SeqCst);
                if let Some(ending) = cut {
                    return End::Cut(ending);
                }
                if !written {
                    return End::Broken;
                }
                if let Fault::Bandwidth(rate) = fault {
                    tokio::time::sleep_until(started + Duration::from_secs_f64(allowed as f64 / rate as f64)).await;
                }
                rest = rest_after;
            }
        }
    };
    tokio::select! {
        end = reading => end,
        end = writing => end,
    }
}

/// Waits until bytes due at `due` may pass: the time has come and no blackhole holds them
/// (checked again after the wait, as a blackhole may begin meanwhile); false when the proxy
/// is gone.
async fn passable(faults: &mut watch::Receiver<(u64, Fault)>, due: Instant) -> bool {
    loop {
        if faults.wait_for(|(_, f)| *f != Fault::Blackhole).await.is_err() {
            return false;
        }
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        if faults.borrow().1 != Fault::Blackhole {
            return true;
        }
    }
}
