import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export interface LocalWorker {
  readonly url: string
  readonly child: ChildProcess
  /** Everything the process has printed so far. */
  readonly log: () => string
  /** Ends the whole process group (wrangler and its workerd processes) and removes the local state. */
  readonly stop: () => void
}

/**
 * `wrangler dev` (directly, or as `npm start`) on loopback ports that it picks itself (`--port 0`: no
 * port chosen here can be taken by another process before wrangler binds it), with fresh local state (R2,
 * the statistics Durable Object) of its own, so test and bench traffic never lands in what `npm start`
 * keeps in .wrangler/. Returns once wrangler says where it listens; callers wait for whatever else they need.
 */
export const startWranglerDev = async (
  command: readonly [string, ...Array<string>],
  cwd: string,
  args: ReadonlyArray<string>
): Promise<LocalWorker> => {
  const state = mkdtempSync(join(tmpdir(), "ai-image-gateway-"))
  const [program, ...leading] = command
  const child = spawn(
    program,
    [...leading, "--ip", "127.0.0.1", "--port", "0", "--inspector-port", "0", "--persist-to", state, ...args],
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
  const stop = () => {
    if (child.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(-child.pid, "SIGTERM")
      } catch {
        // already gone
      }
    }
    rmSync(state, { recursive: true, force: true })
  }
  const port = await new Promise<string>((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer)
      stop()
      reject(new Error(`wrangler dev ${why}:\n${log}`))
    }
    const exited = (code: number | null) => fail(`exited with ${code}`)
    const timer = setTimeout(() => fail("did not say where it listens within 90 s"), 90_000)
    const look = () => {
      const ready = /Ready on http:\/\/127\.0\.0\.1:(\d+)/.exec(log)
      if (ready === null) return
      clearTimeout(timer)
      child.stdout?.off("data", look)
      child.stderr?.off("data", look)
      child.off("exit", exited)
      resolve(ready[1] ?? "")
    }
    child.stdout?.on("data", look)
    child.stderr?.on("data", look)
    child.once("exit", exited)
  })
  return { url: `http://127.0.0.1:${port}`, child, log: () => log, stop }
}
