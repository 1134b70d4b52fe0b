// Four fork-mode instances on BENCH_NODE_PORTS (the seeds' layout b: 8082-8085), as in
// `pm2 start server.js -- --port=8082 --mode=fork`, with pm2's graceful-reload settings.
const ports = (process.env.BENCH_NODE_PORTS || "8082,8083,8084,8085").split(",");
module.exports = {
  apps: ports.map((port) => ({
    name: `node-${port}`,
    script: `${__dirname}/server.js`,
    exec_mode: "fork",
    instances: 1,
    env: { PORT: port, NODE_ENV: "production" },
    wait_ready: true,
    listen_timeout: 5000,
    kill_timeout: 5000,
  })),
};
