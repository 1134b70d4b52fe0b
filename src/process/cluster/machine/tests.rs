//! Each transition of the supervisor, driven with made-up times and a recording fake for effects.

use std::collections::HashMap;

use super::*;

#[derive(Default)]
struct Fake {
    next: WorkerId,
    /// Slot of each worker started, by id.
    started: Vec<(WorkerId, u16)>,
    signals: Vec<(WorkerId, Signal)>,
    notices: Vec<Notice>,
    memory: HashMap<WorkerId, u64>,
}

impl Effects for Fake {
    fn spawn(&mut self, slot: u16) -> std::io::Result<(WorkerId, u32)> {
        self.next += 1;
        self.started.push((self.next, slot));
        Ok((self.next, 1000 + self.next as u32))
    }
    fn signal(&mut self, worker: WorkerId, signal: Signal) {
        self.signals.push((worker, signal));
    }
    fn tell(&mut self, notice: Notice) {
        self.notices.push(notice);
    }
    fn memory(&mut self, worker: WorkerId) -> Option<u64> {
        self.memory.get(&worker).copied()
    }
}

impl Fake {
    fn last_started(&self) -> WorkerId {
        self.started.last().unwrap().0
    }
    /// Each reload's outcome, a failure as its text.
    fn reload_outcomes(&self) -> Vec<Result<(), String>> {
        self.notices
            .iter()
            .filter_map(|notice| match notice {
                Notice::Ready { reload: Some(outcome), .. } => {
                    Some(outcome.clone().map_err(|e| e.to_string()))
                }
                _ => None,
            })
            .collect()
    }
}

const LIMITS: Limits = Limits {
    watchdog: Duration::from_secs(10),
    ready_timeout: Duration::from_secs(60),
    drain_timeout: Duration::from_secs(10),
    max_memory: Some(100),
};

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

/// A machine of `n` workers, all ready; the fake has started workers 1..=n.
fn ready_cluster(n: u16, t0: Instant) -> (Machine, Fake) {
    let mut fake = Fake::default();
    let mut machine = Machine::start(n, LIMITS, t0, &mut fake);
    for id in 1..=u64::from(n) {
        machine.handle(Input::Ready(id), t0, &mut fake);
    }
    (machine, fake)
}

#[test]
fn every_slot_gets_a_worker_and_ready_is_told_once_all_are() {
    let t0 = Instant::now();
    let mut fake = Fake::default();
    let mut machine = Machine::start(2, LIMITS, t0, &mut fake);
    assert_eq!(fake.started, vec![(1, 0), (2, 1)]);
    machine.handle(Input::Ready(1), t0, &mut fake);
    assert_eq!(fake.notices, vec![Notice::Status("1/2 workers ready, 0 restarts".into())]);
    machine.handle(Input::Ready(2), t0, &mut fake);
    assert_eq!(
        fake.notices.last(),
        Some(&Notice::Ready { status: "2/2 workers ready, 0 restarts".into(), reload: None })
    );
}

#[test]
fn a_dead_worker_is_started_again_after_a_backoff() {
    let t0 = Instant::now();
    let (mut machine, mut fake) = ready_cluster(2, t0);
    machine.handle(Input::Exited { worker: 1, how: "killed".into() }, secs(t0, 1), &mut fake);
    assert_eq!(machine.status(), "1/2 workers ready, 1 restart");
    assert_eq!(fake.started.len(), 2, "not at once: it died young");
    let due = machine.next_deadline().unwrap();
    assert_eq!(due, secs(t0, 1) + Duration::from_millis(100), "the first respawn back-off");
    machine.handle(Input::Tick, due, &mut fake);
    assert_eq!(fake.started.last(), Some(&(3, 0)));
}

#[test]
fn a_reload_replaces_one_slot_at_a_time_each_new_worker_ready_first() {
    let t0 = Instant::now();
    let (mut machine, mut fake) = ready_cluster(2, t0);
    machine.handle(Input::Reload, t0, &mut fake);
    assert!(matches!(fake.notices.last(), Some(Notice::Reloading(_))));
    assert_eq!(fake.started.last(), Some(&(3, 0)), "slot 0 first");
    assert!(fake.signals.is_empty(), "the old worker serves until the new one is ready");
    machine.handle(Input::Ready(3), t0, &mut fake);
    assert_eq!(fake.signals, vec![(1, Signal::Terminate)]);
    assert_eq!(fake.started.last(), Some(&(4, 1)), "then slot 1");
    machine.handle(Input::Ready(4), t0, &mut fake);
    assert_eq!(fake.signals, vec![(1, Signal::Terminate), (2, Signal::Terminate)]);
    assert_eq!(fake.reload_outcomes(), vec![Ok(())]);
    assert_eq!(machine.status(), "2/2 workers ready, 0 restarts");
}

#[test]
fn an_old_worker_that_dies_during_the_reload_is_replaced_by_the_one_already_starting() {
    let t0 = Instant::now();
    let (mut machine, mut fake) = ready_cluster(2, t0);
    machine.handle(Input::Reload, t0, &mut fake);
    machine.handle(Input::Exited { worker: 1, how: "killed".into() }, secs(t0, 1), &mut fake);
    assert_eq!(fake.started.len(), 3, "no extra worker: the replacement is already starting");
    assert_eq!(machine.status(), "1/2 workers ready, 1 restart");
    // Nothing is due but the replacement's ready timeout and the watchdogs: no spinning.
    assert!(machine.next_deadline().unwrap() >= secs(t0, 10));
    machine.handle(Input::Ready(3), secs(t0, 2), &mut fake);
    assert_eq!(fake.started.last(), Some(&(4, 1)), "the reload goes on to slot 1");
    machine.handle(Input::Ready(4), secs(t0, 3), &mut fake);
    assert_eq!(fake.reload_outcomes(), vec![Ok(())]);
    assert_eq!(fake.signals, vec![(2, Signal::Terminate)], "only the living old worker is told to drain");
}

#[test]
fn a_stop_during_a_reload_drains_every_worker_at_once() {
    let t0 = Instant::now();
    let (mut machine, mut fake) = ready_cluster(2, t0);
    machine.handle(Input::Reload, t0, &mut fake);
    machine.handle(Input::Stop, secs(t0, 1), &mut fake);
    let mut told: Vec<_> = fake.signals.clone();
    told.sort_by_key(|(id, _)| *id);
    assert_eq!(told, vec![(1, Signal::Terminate), (2, Signal::Terminate), (3, Signal::Terminate)]);
    assert!(matches!(fake.notices.last(), Some(Notice::Stopping(_))));
    // The new worker's READY=1 no longer starts anything.
    machine.handle(Input::Ready(3), secs(t0, 1), &mut fake);
    assert_eq!(fake.started.len(), 3);
    for id in 1..=3 {
        machine.handle(Input::Exited { worker: id, how: "exited".into() }, secs(t0, 2), &mut fake);
    }
    assert!(machine.finished());
}

#[test]
fn a_stopped_worker_that_overstays_its_drain_is_killed() {
    let t0 = Instant::now();
    let (mut machine, mut fake) = ready_cluster(1, t0);
    machine.handle(Input::Stop, t0, &mut fake);
    let due = machine.next_deadline().unwrap();
    assert_eq!(due, t0 + LIMITS.drain_timeout + STOP_GRACE);
    machine.handle(Input::Tick, due, &mut fake);
    assert_eq!(fake.signals, vec![(1, Signal::Terminate), (1, Signal::Kill)]);
    assert_eq!(machine.next_deadline(), None, "killed: only its exit is awaited");
    machine.handle(Input::Exited { worker: 1, how: "killed".into() }, due, &mut fake);
    assert!(machine.finished());
}

#[test]
fn a_replacement_never_ready_is_killed_and_the_reload_fails_keeping_the_old_worker() {
    let t0 = Instant::now();
    let (mut machine, mut fake) = ready_cluster(2, t0);
    machine.handle(Input::Reload, t0, &mut fake);
    for s in (5..=55).step_by(5) {
        machine.handle(Input::Pinged(1), secs(t0, s), &mut fake);
        machine.handle(Input::Pinged(2), secs(t0, s), &mut fake);
    }
    assert_eq!(machine.next_deadline(), Some(t0 + LIMITS.ready_timeout));
    machine.handle(Input::Tick, t0 + LIMITS.ready_timeout, &mut fake);
    assert_eq!(fake.signals, vec![(3, Signal::Kill)]);
    let outcomes = fake.reload_outcomes();
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].as_ref().unwrap_err().contains("not ready in 60s"), "{outcomes:?}");
    assert_eq!(machine.status(), "2/2 workers ready, 0 restarts", "the old workers serve on");
    assert_eq!(fake.started.len(), 3, "slot 1 is left alone");
    // A new reload may start.
    machine.handle(Input::Exited { worker: 3, how: "killed".into() }, secs(t0, 61), &mut fake);
    machine.handle(Input::Reload, secs(t0, 61), &mut fake);
    assert_eq!(fake.started.last(), Some(&(4, 0)));
}

#[test]
fn a_replacement_that_dies_before_it_is_ready_fails_the_reload() {
    let t0 = Instant::now();
    let (mut machine, mut fake) = ready_cluster(1, t0);
    machine.handle(Input::Reload, t0, &mut fake);
    machine.handle(Input::Exited { worker: 2, how: "exited with status 1".into() }, secs(t0, 1), &mut fake);
    assert_eq!(
        fake.reload_outcomes(),
        vec![Err("worker 0: the replacement exited with status 1 before it was ready".into())]
    );
    assert_eq!(machine.status(), "1/1 workers ready, 0 restarts");
    assert!(fake.signals.is_empty(), "the old worker keeps serving");
}

#[test]
fn a_worker_not_ready_in_time_at_start_is_killed_and_started_again() {
    let t0 = Instant::now();
    let mut fake = Fake::default();
    let mut machine = Machine::start(1, LIMITS, t0, &mut fake);
    machine.handle(Input::Tick, t0 + LIMITS.ready_timeout, &mut fake);
    assert_eq!(fake.signals, vec![(1, Signal::Kill)]);
    machine.handle(Input::Exited { worker: 1, how: "killed".into() }, secs(t0, 61), &mut fake);
    assert_eq!(machine.status(), "0/1 workers ready, 1 restart");
    machine.handle(Input::Tick, machine.next_deadline().unwrap(), &mut fake);
    assert_eq!(fake.last_started(), 2);
}

#[test]
fn a_ready_worker_that_stops_pinging_is_killed() {
    let t0 = Instant::now();
    let (mut machine, mut fake) = ready_cluster(1, t0);
    machine.handle(Input::Pinged(1), secs(t0, 5), &mut fake);
    assert_eq!(machine.next_deadline(), Some(secs(t0, 15)));
    machine.handle(Input::Tick, secs(t0, 15), &mut fake);
    assert_eq!(fake.signals, vec![(1, Signal::Kill)]);
}

#[test]
fn a_worker_over_its_memory_limit_is_replaced_as_a_reload_replaces_it() {
    let t0 = Instant::now();
    let (mut machine, mut fake) = ready_cluster(2, t0);
    fake.memory.insert(1, 100);
    fake.memory.insert(2, 101);
    machine.handle(Input::CheckMemory, t0, &mut fake);
    assert_eq!(fake.started.last(), Some(&(3, 1)), "only the worker over the limit");
    assert!(fake.signals.is_empty(), "it serves until its replacement is ready");
    machine.handle(Input::CheckMemory, t0, &mut fake);
    assert_eq!(fake.started.len(), 3, "one replacement at a time");
    machine.handle(Input::Ready(3), secs(t0, 1), &mut fake);
    assert_eq!(fake.signals, vec![(2, Signal::Terminate)]);
    assert!(fake.reload_outcomes().is_empty(), "not a reload: nothing to report");
    assert_eq!(machine.status(), "2/2 workers ready, 0 restarts");
}

#[test]
fn an_unfit_worker_is_replaced_once_and_one_not_ready_yet_is_stopped() {
    let t0 = Instant::now();
    let (mut machine, mut fake) = ready_cluster(2, t0);
    machine.handle(Input::Unfit(1), t0, &mut fake);
    assert_eq!(fake.started.last(), Some(&(3, 0)), "a replacement for the unfit worker's slot");
    assert!(fake.signals.is_empty(), "it serves until its replacement is ready");
    machine.handle(Input::Unfit(1), t0, &mut fake);
    assert_eq!(fake.started.len(), 3, "said twice, replaced once");
    // The replacement, not ready yet, is unfit too: stopped; its exit leaves the old one serving.
    machine.handle(Input::Unfit(3), t0, &mut fake);
    assert_eq!(fake.signals, vec![(3, Signal::Terminate)]);
    machine.handle(Input::Exited { worker: 3, how: "exited with status 0".into() }, t0, &mut fake);
    assert_eq!(machine.status(), "2/2 workers ready, 0 restarts");
    machine.handle(Input::Unfit(1), secs(t0, 1), &mut fake);
    machine.handle(Input::Ready(4), secs(t0, 1), &mut fake);
    assert_eq!(
        fake.signals.last(),
        Some(&(1, Signal::Terminate)),
        "the old one drains once the new is ready"
    );
    assert_eq!(machine.status(), "2/2 workers ready, 0 restarts");
}
