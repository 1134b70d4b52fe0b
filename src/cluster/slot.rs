//! One place in the cluster, kept filled with a live worker: respawned when it dies (with a backoff
//! so a crash loop does not spin), killed when it misses its watchdog, replaced on reload by a new
//! worker that must be ready before the old one is told to drain.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;

use super::worker::{Event, SpawnSpec, Worker};

/// A worker that lived this long was healthy: its death restarts the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a replacement worker has to become ready before the reload gives up on it.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// What a draining worker gets beyond the drain timeout before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub enum Command {
    /// Start a new worker, and retire the current one once the new one is ready.
    Replace(oneshot::Sender<Result<(), String>>),
    Shutdown,
}

#[derive(Debug)]
pub enum Report {
    Ready {
        index: u16,
        pid: u32,
    },
    /// A worker died and will be started again.
    Died {
        index: u16,
        pid: u32,
    },
    Stopped {
        index: u16,
    },
}

pub struct Slot {
    pub index: u16,
    pub spec: Arc<SpawnSpec>,
    pub drain_timeout: Duration,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub reports: mpsc::UnboundedSender<Report>,
    generation: u64,
    quick_deaths: u32,
}

impl Slot {
    pub fn new(
        index: u16,
        spec: Arc<SpawnSpec>,
        drain_timeout: Duration,
        commands: mpsc::UnboundedReceiver<Command>,
        reports: mpsc::UnboundedSender<Report>,
    ) -> Self {
        Slot { index, spec, drain_timeout, commands, reports, generation: 0, quick_deaths: 0 }
    }

    pub async fn run(mut self) {
        let Some(mut worker) = self.start(Duration::ZERO).await else {
            return self.report(Report::Stopped { index: self.index });
        };
        loop {
            let watchdog_deadline = worker.last_ping + self.spec.watchdog;
            tokio::select! {
                event = worker.next_event() => match event {
                    Event::Notified(notification) => {
                        if notification.ready && !worker.ready {
                            worker.ready = true;
                            self.report(Report::Ready { index: self.index, pid: worker.pid });
                        }
                    }
                    Event::Exited(how) => {
                        let delay = self.backoff(worker.spawned.elapsed());
                        tracing::warn!(worker = self.index, pid = worker.pid, "worker {how}; starting a new one in {delay:?}");
                        self.report(Report::Died { index: self.index, pid: worker.pid });
                        drop(worker);
                        match self.start(delay).await {
                            Some(next) => worker = next,
                            None => break,
                        }
                    }
                },
                _ = sleep_until(watchdog_deadline.into()), if !worker.killed => {
                    tracing::error!(worker = self.index, pid = worker.pid,
                        "worker missed its watchdog deadline ({:?} without a ping); killing it", self.spec.watchdog);
                    worker.kill();
                }
                command = self.commands.recv() => match command {
                    Some(Command::Replace(reply)) => {
                        let (next, outcome) = self.replace(worker).await;
                        worker = next;
                        let _ = reply.send(outcome);
                    }
                    Some(Command::Shutdown) | None => {
                        worker.terminate();
                        let how = worker.wait_exit(self.drain_timeout + STOP_GRACE).await;
                        tracing::info!(worker = self.index, pid = worker.pid, "worker {how}");
                        break;
                    }
                },
            }
        }
        self.report(Report::Stopped { index: self.index });
    }

    /// Starts a worker after `delay`, trying again (with backoff) while spawning fails. `None` when a
    /// shutdown came first.
    async fn start(&mut self, mut delay: Duration) -> Option<Worker> {
        loop {
            let wake = tokio::time::Instant::now() + delay;
            loop {
                tokio::select! {
                    _ = sleep_until(wake) => break,
                    command = self.commands.recv() => match command {
                        // Nothing runs to replace: the worker about to start is already new.
                        Some(Command::Replace(reply)) => { let _ = reply.send(Ok(())); }
                        Some(Command::Shutdown) | None => return None,
                    },
                }
            }
            self.generation += 1;
            match Worker::spawn(&self.spec, self.index, self.generation) {
                Ok(worker) => {
                    tracing::info!(worker = self.index, pid = worker.pid, "worker started");
                    return Some(worker);
                }
                Err(error) => {
                    delay = self.backoff(Duration::ZERO);
                    tracing::error!(worker = self.index, %error, "cannot start a worker; trying again in {delay:?}");
                }
            }
        }
    }

    /// Starts the replacement and waits for it to be ready while `old` keeps serving; then `old`
    /// drains in the background. On failure `old` stays in place.
    async fn replace(&mut self, mut old: Worker) -> (Worker, Result<(), String>) {
        self.generation += 1;
        let mut new = match Worker::spawn(&self.spec, self.index, self.generation) {
            Ok(new) => new,
            Err(error) => {
                return (old, Err(format!("worker {}: cannot start a replacement: {error}", self.index)))
            }
        };
        let give_up = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            tokio::select! {
                event = new.next_event() => match event {
                    Event::Notified(notification) if notification.ready => break,
                    Event::Notified(_) => {}
                    Event::Exited(how) => {
                        return (old, Err(format!("worker {}: the replacement {how} before it was ready", self.index)));
                    }
                },
                // Keep reading the old worker's pings; its exit is handled once the reload is over.
                _ = old.next_event() => {}
                _ = sleep_until(give_up) => {
                    new.kill();
                    let _ = new.wait_exit(STOP_GRACE).await;
                    return (old, Err(format!("worker {}: the replacement was not ready in {READY_TIMEOUT:?}", self.index)));
                }
            }
        }
        new.ready = true;
        tracing::info!(
            worker = self.index,
            old = old.pid,
            new = new.pid,
            "replacement ready; draining the old worker"
        );
        self.report(Report::Ready { index: self.index, pid: new.pid });
        old.terminate();
        let grace = self.drain_timeout + STOP_GRACE;
        tokio::spawn(async move {
            let how = old.wait_exit(grace).await;
            tracing::info!(worker = old.index, pid = old.pid, "replaced worker {how}");
        });
        (new, Ok(()))
    }

    /// How long to wait before the next start after a worker lived `lived`.
    fn backoff(&mut self, lived: Duration) -> Duration {
        if lived >= STABLE_AFTER {
            self.quick_deaths = 0;
            return Duration::ZERO;
        }
        self.quick_deaths += 1;
        FIRST_BACKOFF.saturating_mul(1 << (self.quick_deaths - 1).min(16)).min(MAX_BACKOFF)
    }

    fn report(&self, report: Report) {
        let _ = self.reports.send(report);
    }
}
