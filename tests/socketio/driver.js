// The official socket.io-client, steered by a Rust test (tests/support/socketio.rs): one command a
// line on stdin, one event a line on stdout, both JSON. Several clients live in one driver, each
// under the id the test gives it.
//
// Commands:
//   {"cmd":"connect","id":"a","url":"http://127.0.0.1:8080","auth":{"name":"alice"},"opts":{...}}
//       opts go to io() as they are (transports, upgrade, ...); reconnection is off unless given.
//   {"cmd":"emit","id":"a","event":"join","args":["lobby"],"ack":7}
//       with "ack", the server's acknowledgement is printed as {"id":"a","ack":7,"reply":...}.
//   {"cmd":"close","id":"a"}
// Events printed: connect (with the transport), connect_error (message), disconnect (reason and
// the transport's description), upgrade (the engine moved to another transport), and every event
// the server emits: {"id":"a","event":"message","data":{...}}.
"use strict";

const { io } = require("socket.io-client");
const readline = require("node:readline");

const clients = new Map();

function print(line) {
  process.stdout.write(JSON.stringify(line) + "\n");
}

function connect(command) {
  const { id, url, auth, opts } = command;
  const socket = io(url, { reconnection: false, forceNew: true, auth, ...opts });
  clients.set(id, socket);
  socket.on("connect", () =>
    print({ id, event: "connect", transport: socket.io.engine.transport.name, session: socket.io.engine.id }));
  socket.on("connect_error", (error) => print({ id, event: "connect_error", message: error.message }));
  socket.on("disconnect", (reason, details) =>
    print({ id, event: "disconnect", reason, description: describe(details) }));
  socket.io.on("open", () =>
    socket.io.engine.on("upgrade", (transport) => print({ id, event: "upgrade", transport: transport.name })));
  socket.onAny((event, ...data) => print({ id, event, data: data.length === 1 ? data[0] : data }));
}

/** What the transport said when it closed: its description and, for a WebSocket, the close code
 * and reason. */
function describe(details) {
  if (!details) return null;
  const { description, context } = details;
  const event = context && typeof context === "object" ? context : {};
  return {
    message: typeof description === "string" ? description : String(description?.message ?? ""),
    code: event.code ?? null,
    reason: event.reason === undefined ? null : String(event.reason),
  };
}

function run(command) {
  const socket = clients.get(command.id);
  switch (command.cmd) {
    case "connect":
      return connect(command);
    case "emit":
      if (command.ack === undefined) {
        socket.emit(command.event, ...command.args);
      } else {
        socket.emit(command.event, ...command.args, (reply) => print({ id: command.id, ack: command.ack, reply }));
      }
      return;
    case "close":
      socket.close();
      return;
    default:
      print({ error: `unknown command ${command.cmd}` });
  }
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  try {
    run(JSON.parse(line));
  } catch (error) {
    print({ error: String(error) });
  }
});
// The test closing stdin (dropping the driver) ends everything.
process.stdin.on("end", () => process.exit(0));
