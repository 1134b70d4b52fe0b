//! The cluster bus's framing: what a worker writes to its primary and the primary writes to every
//! worker (the two ends: `process::cluster::bus` and `domain::chat`'s primary relay). One frame is
//! a room and the chat frame for it (the /ws JSON text, as on Redis):
//!
//! ```text
//! u32 big-endian: length of what follows (1 + room bytes + frame bytes), at most MAX_FRAME_BYTES
//! u8:             room bytes (1..=255)
//! room:           UTF-8
//! frame:          UTF-8, the rest
//! ```
//!
//! The length comes first so a reader knows where the next frame starts without parsing JSON, and
//! the limit is checked before anything is buffered: a broken or hostile peer cannot make the
//! reader allocate more than one frame's worth.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest frame (room and chat frame together): the largest chat message the flags allow
/// (`--chat-max-message-bytes` is at most 1 MiB) with its room, sender and timestamp fit, with room
/// to spare; anything longer is a bug or corruption.
pub(crate) const MAX_FRAME_BYTES: usize = 1024 * 1024 + 4096;
/// The length prefix.
const HEADER_BYTES: usize = 4;

/// A frame that breaks the format: the stream can no longer be trusted to be in step.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WireError {
    TooBig(usize),
    Malformed(&'static str),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::TooBig(length) => {
                write!(f, "a bus frame of {length} bytes is over the limit of {MAX_FRAME_BYTES} bytes")
            }
            WireError::Malformed(why) => write!(f, "a malformed bus frame: {why}"),
        }
    }
}

/// One frame ready to write: `room` and `frame` behind their length prefix.
pub(crate) fn encode(room: &str, frame: &str) -> Result<Bytes, WireError> {
    let room_bytes =
        u8::try_from(room.len()).map_err(|_| WireError::Malformed("room name over 255 bytes"))?;
    if room.is_empty() {
        return Err(WireError::Malformed("empty room name"));
    }
    let length = 1 + room.len() + frame.len();
    if length > MAX_FRAME_BYTES {
        return Err(WireError::TooBig(length));
    }
    let mut out = BytesMut::with_capacity(HEADER_BYTES + length);
    out.put_u32(length as u32);
    out.put_u8(room_bytes);
    out.put_slice(room.as_bytes());
    out.put_slice(frame.as_bytes());
    Ok(out.freeze())
}

/// A decoded frame: where its room and chat frame are within `bytes` (the whole encoded frame, so
/// the primary can pass it on as it came, without copying).
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) bytes: Bytes,
    room_end: usize,
}

impl Frame {
    pub(crate) fn room(&self) -> &str {
        // Checked when decoded.
        std::str::from_utf8(&self.bytes[HEADER_BYTES + 1..self.room_end]).unwrap_or_default()
    }

    /// The chat frame, sharing this frame's memory.
    pub(crate) fn frame(&self) -> Bytes {
        self.bytes.slice(self.room_end..)
    }
}

/// Takes the next whole frame off the front of `buffer`: `Ok(None)` when more bytes are needed.
/// After `Err` the stream is out of step and must be closed.
pub(crate) fn decode(buffer: &mut BytesMut) -> Result<Option<Frame>, WireError> {
    if buffer.len() < HEADER_BYTES {
        return Ok(None);
    }
    let length = u32::from_be_bytes(buffer[..HEADER_BYTES].try_into().unwrap_or_default()) as usize;
    if length > MAX_FRAME_BYTES {
        return Err(WireError::TooBig(length));
    }
    if length == 0 {
        return Err(WireError::Malformed("empty frame"));
    }
    if buffer.len() < HEADER_BYTES + length {
        // Room for the rest at once, not grown step by step as it trickles in.
        buffer.reserve(HEADER_BYTES + length - buffer.len());
        return Ok(None);
    }
    let bytes = buffer.split_to(HEADER_BYTES + length).freeze();
    let room_bytes = usize::from(bytes[HEADER_BYTES]);
    let room_end = HEADER_BYTES + 1 + room_bytes;
    if room_bytes == 0 || room_end > bytes.len() {
        return Err(WireError::Malformed("room length out of bounds"));
    }
    let mut body = bytes.slice(HEADER_BYTES + 1..);
    let room = body.split_to(room_bytes);
    if std::str::from_utf8(&room).is_err() || std::str::from_utf8(body.chunk()).is_err() {
        return Err(WireError::Malformed("not UTF-8"));
    }
    Ok(Some(Frame { bytes, room_end }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(mut buffer: BytesMut) -> Vec<(String, String)> {
        let mut frames = Vec::new();
        while let Some(frame) = decode(&mut buffer).unwrap() {
            frames.push((frame.room().to_string(), String::from_utf8(frame.frame().to_vec()).unwrap()));
        }
        assert!(buffer.is_empty(), "left over: {buffer:?}");
        frames
    }

    #[test]
    fn frames_come_back_as_written_in_order() {
        let mut buffer = BytesMut::new();
        buffer.extend_from_slice(&encode("lobby", r#"{"text":"é"}"#).unwrap());
        buffer.extend_from_slice(&encode("r", "").unwrap());
        assert_eq!(
            decode_all(buffer),
            [("lobby".into(), r#"{"text":"é"}"#.into()), ("r".into(), String::new())]
        );
    }

    #[test]
    fn a_frame_split_anywhere_waits_for_its_rest() {
        let encoded = encode("lobby", "hello").unwrap();
        for cut in 0..encoded.len() {
            let mut buffer = BytesMut::from(&encoded[..cut]);
            assert!(decode(&mut buffer).unwrap().is_none(), "cut at {cut}");
            buffer.extend_from_slice(&encoded[cut..]);
            let frame = decode(&mut buffer).unwrap().unwrap();
            assert_eq!((frame.room(), &frame.frame()[..]), ("lobby", &b"hello"[..]));
        }
    }

    #[test]
    fn the_limit_is_checked_on_both_ends_and_before_buffering() {
        let room = "lobby";
        let fits = "x".repeat(MAX_FRAME_BYTES - 1 - room.len());
        let encoded = encode(room, &fits).unwrap();
        assert_eq!(encoded.len(), 4 + MAX_FRAME_BYTES);
        assert_eq!(decode(&mut BytesMut::from(&encoded[..])).unwrap().unwrap().frame().len(), fits.len());

        let over = format!("{fits}x");
        assert_eq!(encode(room, &over).unwrap_err(), WireError::TooBig(MAX_FRAME_BYTES + 1));
        // The header alone is refused: nothing of the announced body is awaited or reserved.
        let mut header = BytesMut::from(&((MAX_FRAME_BYTES + 1) as u32).to_be_bytes()[..]);
        assert_eq!(decode(&mut header).unwrap_err(), WireError::TooBig(MAX_FRAME_BYTES + 1));
        assert!(header.capacity() < 64);
        let mut huge = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert!(matches!(decode(&mut huge), Err(WireError::TooBig(_))));
    }

    #[test]
    fn malformed_frames_are_refused() {
        let refused = |raw: &[u8]| decode(&mut BytesMut::from(raw)).unwrap_err();
        assert_eq!(refused(&[0, 0, 0, 0]), WireError::Malformed("empty frame"));
        assert_eq!(refused(&[0, 0, 0, 1, 0]), WireError::Malformed("room length out of bounds"));
        assert_eq!(refused(&[0, 0, 0, 2, 5, b'a']), WireError::Malformed("room length out of bounds"));
        assert_eq!(refused(&[0, 0, 0, 3, 1, 0xff, b'a']), WireError::Malformed("not UTF-8"));
        assert_eq!(refused(&[0, 0, 0, 3, 1, b'a', 0xc3]), WireError::Malformed("not UTF-8"));
        assert_eq!(encode("", "x").unwrap_err(), WireError::Malformed("empty room name"));
        assert!(encode(&"r".repeat(256), "x").is_err());
    }
}
