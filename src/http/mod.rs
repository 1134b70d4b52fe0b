//! The server: the accept loop and each connection's limits (`connections`), the request body's
//! deadline (`body`), the lingering close (`lingering`), what handlers share (`state`) and the
//! routes. It turns HTTP into calls on `domain` and back.

pub mod body;
pub mod connections;
pub mod lingering;
pub mod routes;
pub mod state;
