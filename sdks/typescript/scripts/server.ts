/**
 * Starts a real `offload serve` on a free loopback port with a fresh SQLite database, for the tests, the type
 * generator and the bench.
 *
 * Invariant: `start` resolves only once the server printed the whole line naming the address it listens on (no
 * polling, no sleep), and `stop` resolves only once the process exited and its temporary directory is gone.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The package root (this file is compiled to `dist/scripts/`). */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The binary to run: `OFFLOAD_BIN`, else the workspace's debug build. */
export function offloadBin(): string {
  return process.env.OFFLOAD_BIN ?? resolve(packageRoot, "../../target/debug/offload");
}

/** A signing secret the tests know, so they can verify deliveries. */
export const TEST_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/** A running server. */
export interface TestServer {
  /** Its base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** The process. */
  process: ChildProcess;
  /** Everything it wrote on standard error so far (shown when it dies early). */
  stderr(): string;
  /** Stops it (SIGTERM) and removes its database. */
  stop(): Promise<void>;
}

/** Options of [`startServer`]. */
export interface StartOptions {
  /** Listen address (default `127.0.0.1:0`: a free port). */
  listen?: string;
  /** Extra arguments after `serve`. */
  args?: string[];
  /** Extra environment. */
  env?: Record<string, string>;
  /** The binary (default [`offloadBin`]). */
  bin?: string;
}

/**
 * The server's line announcing its address, matched only on complete lines: the server writes a line in several
 * pieces, so a chunk can end inside the address (`http://127` would be taken for the host 0.0.0.127).
 */
const LISTENING = /^offload listening on (http:\/\/\S+)/m;

/** The address announced in the complete lines of `text` (up to its last newline), if any. */
export function announcedUrl(text: string): string | undefined {
  return LISTENING.exec(text.slice(0, text.lastIndexOf("\n") + 1))?.[1];
}

/** Starts a server and waits until it listens. */
export async function startServer(options: StartOptions = {}): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), "offload-ts-"));
  const args = [
    "serve",
    "--listen",
    options.listen ?? "127.0.0.1:0",
    "--database",
    join(dir, "offload.db"),
    "--push-signing-secrets",
    TEST_SECRET,
    ...(options.args ?? []),
  ];
  const child = spawn(options.bin ?? offloadBin(), args, {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn", ...options.env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const url = await new Promise<string>((ok, fail) => {
    child.once("error", fail);
    child.once("exit", (code) => fail(new Error(`offload exited with ${code} before listening:\n${stderr}`)));
    // The server announces its address on standard error, next to its logs.
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      const found = announcedUrl(stderr);
      if (found) ok(found);
    });
  }).catch(async (e) => {
    child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
    throw e;
  });
  return {
    url,
    process: child,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
