// The seeds' chat (seed 002) for `cargo bench --bench capacity -- load node`: one Node process of
// Socket.IO 4 with @socket.io/redis-adapter, speaking the same contract as our /socket.io/ (connect
// with auth {name}; `join`/`leave` a room, `message` {room, text}, each acknowledged with {ok: true}
// or {error}; event `message` {room, from, text, ts} to every member, the sender included; event
// `presence` on join and leave). Environment: PORT, REDIS_URL (none: rooms stay in this process).
const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const port = Number(process.env.PORT || 8080);
const NAME = /^[\p{Alphabetic}\p{N}_.-]{1,32}$/u;

async function main() {
  const server = http.createServer();
  const io = new Server(server, { pingInterval: 25000, pingTimeout: 20000, maxHttpBufferSize: 4096 });
  if (process.env.REDIS_URL) {
    const pub = createClient({ url: process.env.REDIS_URL });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub));
  }
  io.use((socket, next) => {
    const name = socket.handshake.auth && socket.handshake.auth.name;
    if (typeof name === "string" && NAME.test(name)) return next();
    next(new Error("name may hold 1 to 32 letters, digits, `-`, `_` and `.`"));
  });
  io.on("connection", (socket) => {
    const name = socket.handshake.auth.name;
    const presence = (room, event) => io.to(room).emit("presence", { room, event, name, ts: Date.now() });
    const answer = (ack, error) => typeof ack === "function" && ack(error ? { error } : { ok: true });
    socket.on("join", (room, ack) => {
      if (typeof room !== "string" || !NAME.test(room)) return answer(ack, "bad room name");
      socket.join(room);
      presence(room, "join");
      answer(ack);
    });
    socket.on("leave", (room, ack) => {
      socket.leave(room);
      presence(room, "leave");
      answer(ack);
    });
    socket.on("message", (body, ack) => {
      const { room, text } = body || {};
      if (!socket.rooms.has(room)) return answer(ack, "join the room first");
      if (typeof text !== "string" || !text.trim()) return answer(ack, "text must not be empty");
      io.to(room).emit("message", { room, from: name, text, ts: Date.now() });
      answer(ack);
    });
    socket.on("disconnecting", () => {
      for (const room of socket.rooms) if (room !== socket.id) presence(room, "leave");
    });
  });
  server.listen(port, "127.0.0.1");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
