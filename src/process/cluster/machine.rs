//! The cluster supervisor as one state machine: every worker's phase, every deadline and every
//! command in one place. It owns no process: it is told what happened ([`Input`]) and at what time,
//! and acts through [`Effects`] (start a worker, signal one, tell the service manager). So each
//! transition is a plain function call that a unit test can drive with made-up times, and the
//! driver in `mod.rs` only turns signals, worker events and timers into inputs.
//!
//! A slot is one place in the cluster, kept filled with a live worker:
//!
//! ```text
//!  Waiting --(backoff over)--> Starting --(READY=1)--> Serving --(reload / over memory)--> Replacing
//!     ^                           |                       |                                  |
//!     +--(died, killed when not --+-----------(died)------+   new ready: old retired, Serving(new)
//!         ready in time)                                      new died/late: Serving(old)
//!                                                             old died: Starting(new)
//! ```
//!
//! Retired workers (replaced or stopped) drain on SIGTERM and are killed when they overstay. A
//! stop empties every slot at once, whatever a reload is waiting for.

use std::time::{Duration, Instant};

use crate::process::backoff::Doubling;

/// Identifies one worker process for its whole life (pids are reused; these are not).
pub(crate) type WorkerId = u64;

/// A worker that lived this long was healthy: its death restarts the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// The wait before a slot's next worker after quick deaths in a row: 0.1 s doubling to 10 s.
const RESPAWNS: Doubling = Doubling { first: Duration::from_millis(100), max: Duration::from_secs(10) };
/// What a draining worker gets beyond the drain timeout before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Terminate,
    Kill,
}

/// What the service manager is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    Status(String),
    /// READY=1: at first when every worker is, then at the end of each reload with its outcome.
    Ready {
        status: String,
        reload: Option<Result<(), ReplacementFailed>>,
    },
    Reloading(String),
    Stopping(String),
}

/// Why a new worker did not take an old one's place (the old one keeps serving); a reload's
/// failure when it was replacing for a reload. The texts reach `systemctl status` and
/// `app reload --pid`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReplacementFailed {
    #[error("worker {slot}: cannot start a replacement: {error}")]
    NotStarted { slot: usize, error: String },
    #[error("worker {slot}: the replacement {how} before it was ready")]
    Died { slot: usize, how: String },
    #[error("worker {slot}: the replacement was not ready in {timeout:?}")]
    NotReady { slot: usize, timeout: Duration },
}

/// The machine's way to act on the world.
pub(crate) trait Effects {
    /// Starts a worker process for `slot`.
    fn spawn(&mut self, slot: u16) -> std::io::Result<(WorkerId, u32)>;
    fn signal(&mut self, worker: WorkerId, signal: Signal);
    fn tell(&mut self, notice: Notice);
    /// The resident memory of a worker, if it can be read.
    fn memory(&mut self, worker: WorkerId) -> Option<u64>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    Ready(WorkerId),
    Pinged(WorkerId),
    Exited {
        worker: WorkerId,
        how: String,
    },
    Reload,
    Stop,
    /// Time to compare the serving workers' memory with the limit.
    CheckMemory,
    /// The worker can no longer serve fully (its chat bus was cut off): replaced as for memory.
    Unfit(WorkerId),
    /// A deadline may have passed; nothing else happened.
    Tick,
}

/// The limits the machine holds its workers to.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// How long a ready worker may go without WATCHDOG=1.
    pub(crate) watchdog: Duration,
    /// How long a started worker has to become ready.
    pub(crate) ready_timeout: Duration,
    /// The workers' --drain-timeout: a retired worker is killed after it plus a grace.
    pub(crate) drain_timeout: Duration,
    pub(crate) max_memory: Option<u64>,
}

#[derive(Debug, Clone)]
struct Worker {
    id: WorkerId,
    pid: u32,
    slot: u16,
    spawned: Instant,
    last_ping: Instant,
    /// SIGKILL sent: only its exit is awaited now.
    killed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Reload,
    Memory,
    Unfit,
}

#[derive(Debug)]
enum Phase {
    /// Dead; the next worker starts at this time (the backoff).
    Waiting {
        at: Instant,
    },
    /// Started, not ready yet.
    Starting(Worker),
    Serving(Worker),
    /// `old` serves while `new` starts; `old` is retired once `new` is ready.
    Replacing {
        old: Worker,
        new: Worker,
        why: Why,
    },
    /// Stopping: nothing runs here any more.
    Empty,
}

struct Slot {
    phase: Phase,
    quick_deaths: u32,
}

struct Retired {
    worker: Worker,
    kill_at: Instant,
}

pub(crate) struct Machine {
    limits: Limits,
    slots: Vec<Slot>,
    retired: Vec<Retired>,
    /// The slot a reload is at (replacing, or waiting for its new worker), if one is under way.
    reload: Option<usize>,
    stopping: bool,
    restarts: u64,
    /// READY=1 was sent once every worker first was.
    announced: bool,
    last_status: String,
}

impl Machine {
    /// Starts a worker in each of `workers` slots.
    pub(crate) fn start(workers: u16, limits: Limits, now: Instant, effects: &mut impl Effects) -> Machine {
        let mut machine = Machine {
            limits,
            slots: (0..workers)
                .map(|_| Slot { phase: Phase::Waiting { at: now }, quick_deaths: 0 })
                .collect(),
            retired: Vec::new(),
            reload: None,
            stopping: false,
            restarts: 0,
            announced: false,
            last_status: String::new(),
        };
        // Nothing to tell before the first worker is ready.
        machine.last_status = machine.status();
        machine.handle(Input::Tick, now, effects);
        machine
    }

    pub(crate) fn handle(&mut self, input: Input, now: Instant, effects: &mut impl Effects) {
        match input {
            Input::Ready(id) => self.on_ready(id, now, effects),
            Input::Pinged(id) => {
                if let Some(worker) = self.find_mut(id) {
                    worker.last_ping = now;
                }
            }
            Input::Exited { worker, how } => self.on_exit(worker, &how, now, effects),
            Input::Reload => self.on_reload(now, effects),
            Input::Stop => self.on_stop(now, effects),
            Input::CheckMemory => self.check_memory(now, effects),
            Input::Unfit(id) => self.on_unfit(id, now, effects),
            Input::Tick => {}
        }
        self.expire(now, effects);
        self.report(effects);
    }

    /// The earliest time something is due (a start, a ready timeout, a watchdog, a kill).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut deadlines = Vec::new();
        for slot in &self.slots {
            match &slot.phase {
                Phase::Waiting { at } => deadlines.push(*at),
                Phase::Starting(worker) => deadlines.extend(self.ready_deadline(worker)),
                Phase::Serving(worker) => deadlines.extend(self.watchdog_deadline(worker)),
                Phase::Replacing { old, new, .. } => {
                    deadlines.extend(self.watchdog_deadline(old));
                    deadlines.extend(self.ready_deadline(new));
                }
                Phase::Empty => {}
            }
        }
        deadlines.extend(self.retired.iter().filter(|r| !r.worker.killed).map(|r| r.kill_at));
        deadlines.into_iter().min()
    }

    /// Stopping, and every worker is gone.
    pub(crate) fn finished(&self) -> bool {
        self.stopping && self.retired.is_empty() && self.slots.iter().all(|s| matches!(s.phase, Phase::Empty))
    }

    pub(crate) fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Slots with a ready worker serving.
    pub(crate) fn ready_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| matches!(slot.phase, Phase::Serving(_) | Phase::Replacing { .. }))
            .count()
    }

    pub(crate) fn status(&self) -> String {
        let restarts = self.restarts;
        let plural = if restarts == 1 { "" } else { "s" };
        format!("{}/{} workers ready, {restarts} restart{plural}", self.ready_count(), self.slots.len())
    }

    fn on_ready(&mut self, id: WorkerId, now: Instant, effects: &mut impl Effects) {
        let Some(index) = self.slots.iter().position(|slot| match &slot.phase {
            Phase::Starting(worker) => worker.id == id,
            Phase::Replacing { new, .. } => new.id == id,
            _ => false,
        }) else {
            return; // Ready after it was given up on, or retired: nothing changes.
        };
        let phase = std::mem::replace(&mut self.slots[index].phase, Phase::Empty);
        self.slots[index].phase = match phase {
            Phase::Starting(worker) => {
                tracing::info!(worker = worker.slot, pid = worker.pid, "worker ready");
                Phase::Serving(Worker { last_ping: now, ..worker })
            }
            Phase::Replacing { old, new, why } => {
                tracing::info!(
                    worker = new.slot,
                    old = old.pid,
                    new = new.pid,
                    ?why,
                    "replacement ready; draining the old worker"
                );
                self.retire(old, now, effects);
                Phase::Serving(Worker { last_ping: now, ..new })
            }
            other => other,
        };
        if self.reload == Some(index) {
            self.advance_reload(index + 1, now, effects);
        }
    }

    fn on_exit(&mut self, id: WorkerId, how: &str, now: Instant, effects: &mut impl Effects) {
        if let Some(at) = self.retired.iter().position(|r| r.worker.id == id) {
            let gone = self.retired.swap_remove(at).worker;
            tracing::info!(worker = gone.slot, pid = gone.pid, "retired worker {how}");
            return;
        }
        let Some(index) = self.slots.iter().position(|slot| slot_holds(slot, id)) else {
            return;
        };
        let mut failed = None;
        let phase = std::mem::replace(&mut self.slots[index].phase, Phase::Empty);
        self.slots[index].phase = match phase {
            Phase::Starting(worker) | Phase::Serving(worker) => {
                self.restarts += 1;
                let delay = self.backoff(index, now - worker.spawned);
                tracing::warn!(
                    worker = worker.slot,
                    pid = worker.pid,
                    "worker {how}; starting a new one in {delay:?}"
                );
                if self.reload == Some(index) {
                    // The reload was waiting for this worker (its predecessor died meanwhile).
                    failed =
                        Some((Why::Reload, ReplacementFailed::Died { slot: index, how: how.to_string() }));
                }
                Phase::Waiting { at: now + delay }
            }
            Phase::Replacing { old, new, .. } if old.id == id => {
                // The replacement is already on its way: it takes the place once ready.
                self.restarts += 1;
                tracing::warn!(
                    worker = old.slot,
                    pid = old.pid,
                    new = new.pid,
                    "worker {how} while being replaced; its replacement takes over"
                );
                Phase::Starting(new)
            }
            Phase::Replacing { old, new, why } => {
                let slot = usize::from(new.slot);
                failed = Some((why, ReplacementFailed::Died { slot, how: how.to_string() }));
                Phase::Serving(old)
            }
            other => other,
        };
        if let Some((why, error)) = failed {
            self.replacement_failed(index, why, error, effects);
        }
    }

    fn on_reload(&mut self, now: Instant, effects: &mut impl Effects) {
        if self.stopping {
            return;
        }
        if self.reload.is_some() {
            // Said again, so that whoever asked (app reload --pid) waits for the READY=1 that ends it.
            tracing::info!("reload requested: one is already under way");
            effects.tell(Notice::Reloading(format!("a reload is under way; {}", self.status())));
            return;
        }
        tracing::info!("reload: replacing the workers one by one");
        effects.tell(Notice::Reloading(format!("replacing workers; {}", self.status())));
        self.advance_reload(0, now, effects);
    }

    /// Moves the reload to the first slot from `from` that still has an old worker serving.
    fn advance_reload(&mut self, from: usize, now: Instant, effects: &mut impl Effects) {
        for index in from..self.slots.len() {
            match &mut self.slots[index].phase {
                // Its next worker is a new one anyway.
                Phase::Waiting { .. } | Phase::Empty => continue,
                // Wait for the worker already starting (or replacing for memory) instead.
                Phase::Starting(_) => {}
                Phase::Replacing { why, .. } => *why = Why::Reload,
                Phase::Serving(_) => {
                    if let Err(error) = self.replace(index, Why::Reload, now, effects) {
                        return self.finish_reload(Err(error), effects);
                    }
                }
            }
            self.reload = Some(index);
            return;
        }
        self.finish_reload(Ok(()), effects);
    }

    fn finish_reload(&mut self, outcome: Result<(), ReplacementFailed>, effects: &mut impl Effects) {
        self.reload = None;
        match &outcome {
            Ok(()) => tracing::info!("reload done: every worker replaced"),
            Err(error) => tracing::error!(%error, "reload failed; the old workers keep serving"),
        }
        effects.tell(Notice::Ready { status: self.status(), reload: Some(outcome) });
    }

    /// Starts a replacement for the serving worker of `index`.
    fn replace(
        &mut self,
        index: usize,
        why: Why,
        now: Instant,
        effects: &mut impl Effects,
    ) -> Result<(), ReplacementFailed> {
        let (id, pid) = effects
            .spawn(index as u16)
            .map_err(|error| ReplacementFailed::NotStarted { slot: index, error: error.to_string() })?;
        let new = Worker { id, pid, slot: index as u16, spawned: now, last_ping: now, killed: false };
        tracing::info!(worker = index, pid, ?why, "replacement started");
        let phase = std::mem::replace(&mut self.slots[index].phase, Phase::Empty);
        self.slots[index].phase = match phase {
            Phase::Serving(old) => Phase::Replacing { old, new, why },
            other => other,
        };
        Ok(())
    }

    fn replacement_failed(
        &mut self,
        index: usize,
        why: Why,
        error: ReplacementFailed,
        effects: &mut impl Effects,
    ) {
        match why {
            Why::Reload if self.reload == Some(index) => self.finish_reload(Err(error), effects),
            _ => tracing::error!(%error, "the old worker keeps serving"),
        }
    }

    fn on_stop(&mut self, now: Instant, effects: &mut impl Effects) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.reload = None;
        effects.tell(Notice::Stopping(format!("draining {} workers", self.slots.len())));
        for index in 0..self.slots.len() {
            match std::mem::replace(&mut self.slots[index].phase, Phase::Empty) {
                Phase::Starting(worker) | Phase::Serving(worker) => self.retire(worker, now, effects),
                Phase::Replacing { old, new, .. } => {
                    self.retire(new, now, effects);
                    self.retire(old, now, effects);
                }
                Phase::Waiting { .. } | Phase::Empty => {}
            }
        }
    }

    fn check_memory(&mut self, now: Instant, effects: &mut impl Effects) {
        let Some(limit) = self.limits.max_memory else { return };
        if self.stopping {
            return;
        }
        for index in 0..self.slots.len() {
            let Phase::Serving(worker) = &self.slots[index].phase else { continue };
            let (id, pid) = (worker.id, worker.pid);
            let Some(used) = effects.memory(id).filter(|used| *used > limit) else { continue };
            tracing::warn!(worker = index, pid, used, limit, "worker over --worker-max-memory; replacing it");
            if let Err(error) = self.replace(index, Why::Memory, now, effects) {
                tracing::error!(%error, "the worker over its memory limit keeps serving");
            }
        }
    }

    /// Replaces an unfit worker: a serving one as for memory (the new one ready first); one not ready
    /// yet is stopped, and its exit starts another as a death does. One already being replaced, or
    /// retired, has its end under way.
    fn on_unfit(&mut self, id: WorkerId, now: Instant, effects: &mut impl Effects) {
        if self.stopping {
            return;
        }
        let Some(index) = self.slots.iter().position(|slot| slot_holds(slot, id)) else { return };
        match &self.slots[index].phase {
            Phase::Serving(_) => {
                if let Err(error) = self.replace(index, Why::Unfit, now, effects) {
                    tracing::error!(%error, "the unfit worker keeps serving");
                }
            }
            Phase::Starting(_) => effects.signal(id, Signal::Terminate),
            Phase::Replacing { new, .. } if new.id == id => effects.signal(id, Signal::Terminate),
            _ => {}
        }
    }

    /// Acts on every deadline that has passed.
    fn expire(&mut self, now: Instant, effects: &mut impl Effects) {
        let mut failed = Vec::new();
        for index in 0..self.slots.len() {
            let phase = std::mem::replace(&mut self.slots[index].phase, Phase::Empty);
            self.slots[index].phase = match phase {
                Phase::Waiting { at } if at <= now && !self.stopping => match effects.spawn(index as u16) {
                    Ok((id, pid)) => {
                        tracing::info!(worker = index, pid, "worker started");
                        Phase::Starting(Worker {
                            id,
                            pid,
                            slot: index as u16,
                            spawned: now,
                            last_ping: now,
                            killed: false,
                        })
                    }
                    Err(error) => {
                        let delay = self.backoff(index, Duration::ZERO);
                        tracing::error!(worker = index, %error, "cannot start a worker; trying again in {delay:?}");
                        Phase::Waiting { at: now + delay }
                    }
                },
                Phase::Starting(mut worker) => {
                    if self.ready_deadline(&worker).is_some_and(|at| at <= now) {
                        tracing::error!(worker = index, pid = worker.pid, timeout = ?self.limits.ready_timeout, "worker not ready in time; killing it");
                        kill(&mut worker, effects);
                    }
                    Phase::Starting(worker)
                }
                Phase::Serving(mut worker) => {
                    self.enforce_watchdog(&mut worker, effects, now);
                    Phase::Serving(worker)
                }
                Phase::Replacing { mut old, mut new, why } => {
                    self.enforce_watchdog(&mut old, effects, now);
                    if self.ready_deadline(&new).is_some_and(|at| at <= now) {
                        kill(&mut new, effects);
                        let error =
                            ReplacementFailed::NotReady { slot: index, timeout: self.limits.ready_timeout };
                        self.retired.push(Retired { worker: new, kill_at: now });
                        failed.push((index, why, error));
                        Phase::Serving(old)
                    } else {
                        Phase::Replacing { old, new, why }
                    }
                }
                other => other,
            };
        }
        for (index, why, error) in failed {
            self.replacement_failed(index, why, error, effects);
        }
        for retired in &mut self.retired {
            if !retired.worker.killed && retired.kill_at <= now {
                tracing::warn!(
                    worker = retired.worker.slot,
                    pid = retired.worker.pid,
                    "still running after its drain; killing it"
                );
                kill(&mut retired.worker, effects);
            }
        }
    }

    fn enforce_watchdog(&self, worker: &mut Worker, effects: &mut impl Effects, now: Instant) {
        if self.watchdog_deadline(worker).is_some_and(|at| at <= now) {
            tracing::error!(
                worker = worker.slot,
                pid = worker.pid,
                "worker missed its watchdog deadline ({:?} without a ping); killing it",
                self.limits.watchdog
            );
            kill(worker, effects);
        }
    }

    fn ready_deadline(&self, worker: &Worker) -> Option<Instant> {
        (!worker.killed).then(|| worker.spawned + self.limits.ready_timeout)
    }

    fn watchdog_deadline(&self, worker: &Worker) -> Option<Instant> {
        (!worker.killed).then(|| worker.last_ping + self.limits.watchdog)
    }

    /// Tells a worker to drain; it is killed if it is still there after the drain timeout and a grace.
    fn retire(&mut self, worker: Worker, now: Instant, effects: &mut impl Effects) {
        if !worker.killed {
            effects.signal(worker.id, Signal::Terminate);
        }
        let kill_at = now + self.limits.drain_timeout + STOP_GRACE;
        self.retired.push(Retired { worker, kill_at });
    }

    fn find_mut(&mut self, id: WorkerId) -> Option<&mut Worker> {
        self.slots
            .iter_mut()
            .flat_map(|slot| match &mut slot.phase {
                Phase::Starting(worker) | Phase::Serving(worker) => vec![worker],
                Phase::Replacing { old, new, .. } => vec![old, new],
                Phase::Waiting { .. } | Phase::Empty => vec![],
            })
            .chain(self.retired.iter_mut().map(|retired| &mut retired.worker))
            .find(|worker| worker.id == id)
    }

    /// How long to wait before the next start after the slot's worker lived `lived`.
    fn backoff(&mut self, index: usize, lived: Duration) -> Duration {
        let slot = &mut self.slots[index];
        if lived >= STABLE_AFTER {
            slot.quick_deaths = 0;
            return Duration::ZERO;
        }
        slot.quick_deaths += 1;
        RESPAWNS.after(slot.quick_deaths)
    }

    /// STATUS= when it changed; READY=1 once, when every worker first is.
    fn report(&mut self, effects: &mut impl Effects) {
        let status = self.status();
        if status == self.last_status || self.stopping {
            return;
        }
        self.last_status = status.clone();
        if !self.announced && self.ready_count() == self.slots.len() {
            self.announced = true;
            tracing::info!("{status}");
            effects.tell(Notice::Ready { status, reload: None });
        } else {
            effects.tell(Notice::Status(status));
        }
    }
}

fn slot_holds(slot: &Slot, id: WorkerId) -> bool {
    match &slot.phase {
        Phase::Starting(worker) | Phase::Serving(worker) => worker.id == id,
        Phase::Replacing { old, new, .. } => old.id == id || new.id == id,
        Phase::Waiting { .. } | Phase::Empty => false,
    }
}

fn kill(worker: &mut Worker, effects: &mut impl Effects) {
    worker.killed = true;
    effects.signal(worker.id, Signal::Kill);
}

#[cfg(test)]
mod tests;
