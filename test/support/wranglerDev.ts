import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort } from "./freePort.ts"

export interface LocalWorker {
  readonly url: string
  readonly child: ChildProcess
  /** Everything the process has printed so far. */
  readonly log: () => string
  /** Ends the whole process group (wrangler and its workerd processes) and removes the local state. */
  readonly stop: () => void
}

/**
 * `wrangler dev` (directly, or as `npm start`) on free loopback ports, with
 * fresh local state (R2, the statistics Durable Object) of its own, so test and
 * bench traffic never lands in what `npm start` keeps in .wrangler/. Returns at
 * once; callers wait for readiness in the way they need.
 */
export const startWranglerDev = async (
  command: readonly [string, ...Array<string>],
  cwd: string,
  args: ReadonlyArray<string>
): Promise<LocalWorker> => {
  const port = await freePort()
  const inspector = await freePort()
  const state = mkdtempSync(join(tmpdir(), "ai-image-gateway-"))
  const [program, ...leading] = command
  const child = spawn(
    program,
    [
      ...leading,
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--inspector-port",
      String(inspector),
      "--persist-to",
      state,
      ...args
    ],
    {
      cwd,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" }
    }
  )
  let log = ""
  child.stdout?.on("data", (chunk: Buffer) => (log += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()))
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    log: () => log,
    stop: () => {
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(-child.pid, "SIGTERM")
        } catch {
          // already gone
        }
      }
      rmSync(state, { recursive: true, force: true })
    }
  }
}
