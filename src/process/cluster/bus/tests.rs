//! The primary's fan-out over real socketpairs, each test end standing for a worker.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Attaches worker `id` and returns its end of the bus.
fn worker(bus: &Arc<Bus>, id: WorkerId) -> UnixStream {
    let (ours, theirs) = Bus::pair().unwrap();
    bus.attach(id, id as u16, 0, ours);
    let theirs = std::os::unix::net::UnixStream::from(theirs);
    theirs.set_nonblocking(true).unwrap();
    UnixStream::from_std(theirs).unwrap()
}

async fn next_frame(end: &mut UnixStream, buffer: &mut BytesMut) -> (String, String) {
    loop {
        if let Some(frame) = wire::decode(buffer).unwrap() {
            return (frame.room().to_string(), String::from_utf8(frame.frame().to_vec()).unwrap());
        }
        assert!(end.read_buf(buffer).await.unwrap() > 0, "the bus closed");
    }
}

#[tokio::test]
async fn every_worker_gets_every_frame_in_one_order_the_sender_included() {
    let (events, _) = mpsc::unbounded_channel();
    let bus = Bus::new(events);
    let mut ends = [worker(&bus, 1), worker(&bus, 2)];
    let mut buffers = [BytesMut::new(), BytesMut::new()];
    ends[0].write_all(&wire::encode("lobby", "one").unwrap()).await.unwrap();
    ends[1].write_all(&wire::encode("kitchen", "two").unwrap()).await.unwrap();
    let mut seen = Vec::new();
    for (end, buffer) in ends.iter_mut().zip(&mut buffers) {
        seen.push([next_frame(end, buffer).await, next_frame(end, buffer).await]);
    }
    assert_eq!(seen[0], seen[1], "one order");
    assert!(
        seen[0].contains(&("lobby".into(), "one".into()))
            && seen[0].contains(&("kitchen".into(), "two".into()))
    );
}

#[tokio::test]
async fn a_worker_writing_over_the_frame_limit_is_cut_off_and_the_others_go_on() {
    let (events, mut reported) = mpsc::unbounded_channel();
    let bus = Bus::new(events);
    let mut broken = worker(&bus, 1);
    let mut healthy = worker(&bus, 2);
    broken.write_all(&((wire::MAX_FRAME_BYTES + 1) as u32).to_be_bytes()).await.unwrap();
    let (id, event) = reported.recv().await.unwrap();
    assert!(id == 1 && matches!(event, Event::Unfit));
    let mut rest = Vec::new();
    assert_eq!(broken.read_to_end(&mut rest).await.unwrap(), 0, "its bus is closed");

    healthy.write_all(&wire::encode("lobby", "still here").unwrap()).await.unwrap();
    let got = next_frame(&mut healthy, &mut BytesMut::new()).await;
    assert_eq!(got, ("lobby".into(), "still here".into()));
    assert!(reported.try_recv().is_err(), "only the broken worker was cut off");
}

#[tokio::test]
async fn a_worker_that_does_not_read_is_cut_off_once_its_queue_is_full() {
    let (events, mut reported) = mpsc::unbounded_channel();
    let bus = Bus::new(events);
    let mut talker = worker(&bus, 1);
    let _deaf = worker(&bus, 2);
    let frame = wire::encode("lobby", &"x".repeat(60_000)).unwrap();
    let mut buffer = BytesMut::new();
    // The talker reads its own frames back as it goes; the deaf worker reads nothing.
    let cut = loop {
        talker.write_all(&frame).await.unwrap();
        next_frame(&mut talker, &mut buffer).await;
        if let Ok(cut) = reported.try_recv() {
            break cut;
        }
    };
    assert_eq!(cut.0, 2, "the worker that fell behind");
    assert!(bus.lock().contains_key(&1) && !bus.lock().contains_key(&2));
}
