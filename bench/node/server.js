// The Node stack of the seeds, for bench/run.sh: an Express app with the same routes as `app`
// (/info, /api/randoms?cant=N, POST /v1/todos), run as four fork-mode pm2 instances behind nginx.
// /api/randoms computes in the event loop, as the seeds' non-forked version does.
const express = require("express");
const os = require("os");

const app = express();
app.use(express.json({ limit: "1mb" }));
const port = Number(process.env.PORT || 8080);
const started = Date.now();

app.get("/info", (req, res) => {
  res.set("x-app-pid", String(process.pid));
  res.json({
    args: process.argv.slice(2),
    platform: { os: process.platform, arch: process.arch },
    version: process.version,
    rss_bytes: process.memoryUsage().rss,
    exec_path: process.execPath,
    pid: process.pid,
    ppid: process.ppid,
    cwd: process.cwd(),
    cpus: os.cpus().length,
    mode: "fork",
    port,
    uptime_s: (Date.now() - started) / 1000,
    client: req.ip,
  });
});

app.get("/api/randoms", (req, res) => {
  const cant = req.query.cant === undefined ? 100000000 : Number(req.query.cant);
  if (!Number.isInteger(cant) || cant < 1 || cant > 1000000000) {
    return res.status(400).json({ error: "cant must be a whole number from 1 to 1000000000" });
  }
  const counts = new Uint32Array(1001);
  for (let i = 0; i < cant; i++) counts[1 + Math.floor(Math.random() * 1000)]++;
  const out = {};
  for (let n = 1; n <= 1000; n++) if (counts[n]) out[n] = counts[n];
  res.json(out);
});

const todos = [];
app.post("/v1/todos", (req, res) => {
  const title = req.body && req.body.title;
  if (typeof title !== "string" || title.length === 0) {
    return res.status(400).json({ error: "title must be a non-empty string" });
  }
  const todo = { id: todos.length + 1, title, done: false };
  todos.push(todo);
  if (todos.length > 100000) todos.length = 0; // bounded memory during long runs
  res.status(201).json(todo);
});

app.use((req, res) => res.status(404).json({ error: `no route for ${req.path}` }));

const server = app.listen(port, "127.0.0.1", () => {
  if (process.send) process.send("ready"); // pm2 wait_ready
});
process.on("SIGINT", () => server.close(() => process.exit(0)));
