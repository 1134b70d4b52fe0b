//! What the routes compute, with no HTTP in it: the randoms' counts, the todo list and its stores,
//! and the chat rooms with their WebSocket and Socket.IO sessions and relays.

pub mod chat;
pub mod randoms;
pub(crate) mod todos;
