// A moto server (scripts/moto_server.py) on a free loopback port, stopped by its PID.

import { spawn } from "node:child_process";
import { createServer, connect } from "node:net";
import { join } from "node:path";

import { REPO_ROOT, python } from "./python.mjs";

export const REGION = "us-east-1";
export const CREDENTIALS = { accessKeyId: "testing", secretAccessKey: "testing" };

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function accepts(port) {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.on("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

/**
 * Starts moto with `args` (e.g. ["--sqs-refuse-sends", "refusing-email:1"]); resolves
 * once it accepts connections. Call `stop()` at the end.
 */
export async function startMoto(args = []) {
  const port = await freePort();
  const child = spawn(python(), [join(REPO_ROOT, "scripts", "moto_server.py"), "127.0.0.1", String(port), ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr = (stderr + chunk).slice(-4000)));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  // Should the test process end without `stop()`, the server goes with it.
  const orphaned = () => child.exitCode === null && process.kill(child.pid, "SIGKILL");
  process.once("exit", orphaned);
  const deadline = Date.now() + 60_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null) throw new Error(`moto exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) {
      process.kill(child.pid, "SIGKILL");
      throw new Error(`moto did not listen on ${port} within a minute: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    pid: child.pid,
    /** Requests by `Service.Operation` since the last reset. */
    async requests() {
      return (await fetch(`${endpoint}/_symphony/requests`)).json();
    },
    async resetRequests() {
      await fetch(`${endpoint}/_symphony/requests`, { method: "DELETE" });
    },
    async stop() {
      if (child.exitCode !== null) return;
      process.kill(child.pid, "SIGTERM");
      const timer = setTimeout(() => child.exitCode === null && process.kill(child.pid, "SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
      process.off("exit", orphaned);
    },
  };
}
