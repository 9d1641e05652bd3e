import { spawn, spawnSync } from "node:child_process"
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { LocalWorker } from "../test/support/wranglerDev.ts"

/**
 * A Worker in workerd alone: the bundle `wrangler deploy` uploads, served by the workerd binary that wrangler
 * itself runs, configured here. Under `wrangler dev` every answer also passes through wrangler's proxy (a
 * workerd process of its own) and Miniflare's entry worker (in the Worker's process); neither runs on
 * Cloudflare. Without an R2 bucket: the bench measures `b64_json` answers, which never touch it.
 */

const WORKERD = join(import.meta.dirname, "..", "node_modules", ".bin", "workerd")

/** The Worker's module as `wrangler deploy` would upload it, built into `outdir`, with its compatibility settings. */
export const bundleWorker = (cwd: string, outdir: string) => {
  const run = spawnSync("npx", ["wrangler", "deploy", "--dry-run", "--outdir", outdir], {
    cwd,
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" }
  })
  if (run.status !== 0) throw new Error(`wrangler deploy --dry-run in ${cwd} failed:\n${run.stdout}${run.stderr}`)
  const module = readdirSync(outdir).find((name) => name.endsWith(".js"))
  if (module === undefined) throw new Error(`wrangler deploy --dry-run left no module in ${outdir}`)
  const toml = readFileSync(join(cwd, "wrangler.toml"), "utf8")
  const compatibilityDate = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1]
  if (compatibilityDate === undefined) throw new Error(`no compatibility_date in ${cwd}/wrangler.toml`)
  const flags = /^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(toml)?.[1] ?? ""
  const compatibilityFlags = [...flags.matchAll(/"([^"]+)"/g)].map((match) => match[1] ?? "")
  return { module: join(outdir, module), compatibilityDate, compatibilityFlags }
}

export interface WorkerdAloneOptions {
  readonly vars: Readonly<Record<string, string>>
  /** Binding name to the class the bundle exports: SQLite-backed Durable Objects on a local disk of their own. */
  readonly durableObjects?: Readonly<Record<string, string>> | undefined
}

/** Starts the bundle in workerd on a loopback port that workerd picks itself, with fresh state; returns once it listens. */
export const startWorkerdAlone = async (
  bundle: ReturnType<typeof bundleWorker>,
  options: WorkerdAloneOptions
): Promise<LocalWorker> => {
  const dir = mkdtempSync(join(tmpdir(), "workerd-alone-"))
  mkdirSync(join(dir, "state"))
  copyFileSync(bundle.module, join(dir, "worker.js"))
  const text = (value: string) => JSON.stringify(value)
  const durableObjects = Object.entries(options.durableObjects ?? {})
  const bindings = [
    ...Object.entries(options.vars).map(([name, value]) => `(name = ${text(name)}, text = ${text(value)})`),
    ...durableObjects.map(
      ([name, className]) => `(name = ${text(name)}, durableObjectNamespace = (className = ${text(className)}))`
    )
  ]
  const namespaces = durableObjects.map(
    ([, className]) => `(className = ${text(className)}, uniqueKey = ${text(className)}, enableSql = true)`
  )
  writeFileSync(
    join(dir, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "worker", worker = .worker),
    # The bench's fake upstream is on loopback, which workerd's default outbound refuses.
    (name = "internet", network = (allow = ["public", "private", "local"])),
    (name = "state", disk = (path = ${text(join(dir, "state"))}, writable = true))
  ],
  sockets = [(name = "http", address = "127.0.0.1:0", http = (), service = "worker")]
);
const worker :Workerd.Worker = (
  modules = [(name = "worker.js", esModule = embed "worker.js")],
  compatibilityDate = ${text(bundle.compatibilityDate)},
  compatibilityFlags = [${bundle.compatibilityFlags.map(text).join(", ")}],
  bindings = [${bindings.join(", ")}],
  ${namespaces.length > 0 ? `durableObjectNamespaces = [${namespaces.join(", ")}], durableObjectStorage = (localDisk = "state"),` : ""}
  globalOutbound = "internet"
);
`
  )
  // workerd reports the port it bound on the control descriptor (3), as it does for wrangler.
  const child = spawn(WORKERD, ["serve", "config.capnp", "--control-fd=3"], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe", "pipe"]
  })
  let log = ""
  child.stdout?.on("data", (chunk: Buffer) => (log += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()))
  const stop = () => {
    if (child.exitCode === null) child.kill("SIGTERM")
    rmSync(dir, { recursive: true, force: true })
  }
  const port = await new Promise<number>((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer)
      stop()
      reject(new Error(`workerd ${why}:\n${log}`))
    }
    const timer = setTimeout(() => fail("did not listen within 30 s"), 30_000)
    child.once("exit", (code) => fail(`exited with ${code}`))
    let control = ""
    child.stdio[3]?.on("data", (chunk: Buffer) => {
      const lines = (control + chunk.toString()).split("\n")
      control = lines.pop() ?? ""
      for (const line of lines) {
        const event = JSON.parse(line) as { event?: string; port?: number }
        if (event?.event === "listen" && event.port !== undefined) {
          clearTimeout(timer)
          child.removeAllListeners("exit")
          resolve(event.port)
        }
      }
    })
  })
  return { url: `http://127.0.0.1:${port}`, child, log: () => log, stop }
}
