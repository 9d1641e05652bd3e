import { spawn, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { delimiter, join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

/**
 * `npm run deploy` against a stand-in `wrangler` on PATH that records its arguments and plays an account's
 * state, and a local stand-in for the deployed gateway (Cloudflare itself is not reachable from a test).
 */
const STANDIN = `#!/usr/bin/env node
const fs = require("node:fs")
const path = require("node:path")
const args = process.argv.slice(2)
const state = new Set((process.env.STANDIN_STATE || "").split(",").filter(Boolean))
const dir = path.dirname(process.env.STANDIN_LOG)
const entry = { args }
const file = args.indexOf("--secrets-file")
if (file >= 0) entry.secrets = JSON.parse(fs.readFileSync(args[file + 1], "utf8"))
fs.appendFileSync(process.env.STANDIN_LOG, JSON.stringify(entry) + "\\n")
const out = (text) => { process.stdout.write(text + "\\n"); process.exit(0) }
const fail = (text) => { process.stderr.write("✘ [ERROR] " + text + "\\n"); process.exit(1) }
const api = (text) => fail("A request to the Cloudflare API (/accounts/0123/x) failed.\\n\\n  " + text)
const command = args.slice(0, 3).join(" ")
if (command === "whoami")
  out(state.has("logged-out") && !fs.existsSync(path.join(dir, "logged-in"))
    ? "You are not authenticated. Please run \`wrangler login\`."
    : "👋 You are logged in with an OAuth Token, associated with the email dev@example.com.")
if (command === "login") { fs.writeFileSync(path.join(dir, "logged-in"), ""); out("Successfully logged in.") }
if (command.startsWith("r2 bucket create")) {
  if (state.has("r2-off")) api("Please enable R2 through the Cloudflare Dashboard. [code: 10042]")
  if (state.has("bucket-present")) api("The bucket you tried to create already exists, and you own it. [code: 10004]")
  out("Creating bucket '" + args[3] + "'...\\n✅ Created bucket '" + args[3] + "' with default storage class of Standard.")
}
if (command === "secret list --format") {
  if (state.has("has-key")) out('[{"name":"API_KEYS","type":"secret_text"}]')
  if (state.has("has-named-keys")) out('[{"name":"KEYS","type":"secret_text"}]')
  api("This Worker does not exist on your account. [code: 10007]")
}
if (args[0] === "deploy") {
  if (state.has("deploy-fails")) api("Authentication error [code: 10000]")
  out("Total Upload: 640 KiB / gzip: 245 KiB\\nUploaded ai-image-gateway (3.20 sec)\\nDeployed ai-image-gateway triggers (0.40 sec)\\n  " + process.env.STANDIN_URL + "\\n  schedule: */30 * * * *\\nCurrent Version ID: 0000")
}
fail("the stand-in does not play: " + args.join(" "))
`

let bin: string
let gateway: Server
let gatewayUrl: string
/** The deployed gateway's state: healthy or not, and the keys it holds (the uploaded one, or an earlier one). */
const deployed = { healthy: true, keys: new Set<string>(), authorized: [] as Array<string> }

beforeAll(async () => {
  bin = mkdtempSync(join(tmpdir(), "wrangler-standin-"))
  writeFileSync(join(bin, "wrangler"), STANDIN)
  chmodSync(join(bin, "wrangler"), 0o755)
  gateway = createServer((request, response) => {
    const key = /^Bearer (.+)$/.exec(request.headers.authorization ?? "")?.[1]
    const answer = (status: number, body: unknown) => {
      response.writeHead(status, { "content-type": "application/json" })
      response.end(JSON.stringify(body))
    }
    if (request.url === "/health") return answer(deployed.healthy ? 200 : 503, { status: "ok" })
    if (request.url === "/v1/models") {
      if (key === undefined || !deployed.keys.has(key)) return answer(401, { error: { code: "invalid_api_key" } })
      deployed.authorized.push(key)
      return answer(200, { object: "list", data: [{ id: "replicate/flux-schnell" }] })
    }
    answer(404, {})
  })
  await new Promise<void>((resolve) => gateway.listen(0, "127.0.0.1", resolve))
  gatewayUrl = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`
})
afterAll(() => {
  gateway?.close()
  rmSync(bin, { recursive: true, force: true })
})

interface Deploy {
  readonly code: number | null
  readonly output: string
  /** The stand-in's calls: its arguments, and the secrets file's content when one was passed. */
  readonly calls: ReadonlyArray<{ args: ReadonlyArray<string>; secrets?: Record<string, string> }>
}

/** util-linux `script` gives the run a terminal, as a person at a shell has (the login path needs one). */
const hasScript = spawnSync("script", ["--version"], { encoding: "utf8" }).stdout?.includes("util-linux") === true

const deploy = async (
  state: ReadonlyArray<string>,
  env: Record<string, string> = {},
  options: { terminal?: boolean } = {}
): Promise<Deploy> => {
  const work = mkdtempSync(join(tmpdir(), "deploy-run-"))
  const log = join(work, "calls.jsonl")
  writeFileSync(log, "")
  deployed.authorized.length = 0
  const { CLOUDFLARE_API_TOKEN: _token, CLOUDFLARE_ACCOUNT_ID: _account, GATEWAY_API_KEY: _key, ...inherited } = process.env
  const [program, args] =
    options.terminal === true
      ? ["script", ["-qec", `"${process.execPath}" scripts/deploy.ts`, "/dev/null"]]
      : [process.execPath, ["scripts/deploy.ts"]]
  const child = spawn(program, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...inherited,
      PATH: `${bin}${delimiter}${process.env.PATH}`,
      STANDIN_STATE: state.join(","),
      STANDIN_LOG: log,
      STANDIN_URL: gatewayUrl,
      DEPLOY_CHECK_MS: "3000",
      ...env
    }
  })
  let output = ""
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
  // The uploaded key is what the stand-in gateway accepts from then on, as the real one would.
  const watch = setInterval(() => {
    for (const line of readFileSync(log, "utf8").split("\n").filter(Boolean)) {
      const secret = (JSON.parse(line) as { secrets?: { API_KEYS?: string } }).secrets?.API_KEYS
      if (secret !== undefined) deployed.keys.add(secret)
    }
  }, 20)
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve))
  clearInterval(watch)
  const calls = readFileSync(log, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Deploy["calls"][number])
  rmSync(work, { recursive: true, force: true })
  return { code, output, calls }
}
const commands = (run: Deploy) => run.calls.map((call) => call.args.slice(0, call.args[0] === "deploy" ? 2 : 3).join(" "))

// Each run starts Node twice over (the script, the stand-in per call); the unhealthy case waits out its check.
describe("npm run deploy", { timeout: 30_000 }, () => {
  it("on a fresh account: creates the bucket, uploads a new key with the deploy, checks the gateway, prints the key once", async () => {
    const run = await deploy([])
    expect(run.code, run.output).toBe(0)
    expect(commands(run)).toEqual(["whoami", "r2 bucket create", "secret list --format", "deploy --secrets-file"])
    expect(run.calls[1]?.args).toEqual(["r2", "bucket", "create", "ai-image-gateway-images"])
    const key = run.calls[3]?.secrets?.API_KEYS ?? ""
    expect(key).toMatch(/^sk-gw-[A-Za-z0-9_-]{43}$/)
    expect(run.output.split(key).length - 1).toBe(1)
    expect(existsSync(run.calls[3]?.args[2] ?? "")).toBe(false) // the secrets file is gone
    expect(deployed.authorized).toEqual([key])
    expect(run.output).toContain(`Cockpit:  ${gatewayUrl}/`)
    expect(run.output).toContain(`API:      ${gatewayUrl}/v1`)
  })

  it("a Worker with named keys (KEYS) only: no API_KEYS is added, and no key is printed", async () => {
    const run = await deploy(["bucket-present", "has-named-keys"])
    expect(run.code, run.output).toBe(0)
    expect(run.calls[3]?.args).toEqual(["deploy"])
    expect(run.output).toContain("kept as it is")
    expect(run.output).not.toMatch(/sk-gw-/)
  })

  it("run again: the bucket and the key are kept, the deploy carries no secret, and no key is printed", async () => {
    const run = await deploy(["bucket-present", "has-key"])
    expect(run.code, run.output).toBe(0)
    expect(commands(run)).toEqual(["whoami", "r2 bucket create", "secret list --format", "deploy"])
    expect(run.calls[3]?.args).toEqual(["deploy"])
    expect(run.output).toContain("present")
    expect(run.output).toContain("kept as it is")
    expect(run.output).not.toMatch(/sk-gw-/)
    expect(deployed.authorized).toEqual([])
    // With a key it is given, the check makes an authenticated call too.
    deployed.keys.add("sk-existing")
    const checked = await deploy(["bucket-present", "has-key"], { GATEWAY_API_KEY: "sk-existing" })
    expect(checked.code, checked.output).toBe(0)
    expect(deployed.authorized).toEqual(["sk-existing"])
    expect(checked.output).not.toContain("sk-existing")
  })

  it("logged out with no terminal: says how to sign in, and does nothing else", async () => {
    const run = await deploy(["logged-out"])
    expect(run.code).toBe(1)
    expect(commands(run)).toEqual(["whoami"])
    expect(run.output).toContain("npx wrangler login")
    expect(run.output).toContain("CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID")
  })

  it.skipIf(!hasScript)("logged out at a terminal: wrangler login runs, then the deploy goes on", async () => {
    const run = await deploy(["logged-out", "bucket-present", "has-key"], {}, { terminal: true })
    expect(run.code, run.output).toBe(0)
    expect(commands(run)).toEqual(["whoami", "login", "whoami", "r2 bucket create", "secret list --format", "deploy"])
    expect(run.output).toContain("opens the browser to sign in")
  })

  it("CI: a token needs its account id, asked for before any call; with both it goes through without a prompt", async () => {
    const alone = await deploy([], { CLOUDFLARE_API_TOKEN: "token" })
    expect(alone.code).toBe(1)
    expect(alone.calls).toEqual([])
    expect(alone.output).toContain("CLOUDFLARE_ACCOUNT_ID")
    const both = await deploy(["bucket-present"], { CLOUDFLARE_API_TOKEN: "token", CLOUDFLARE_ACCOUNT_ID: "0123" })
    expect(both.code, both.output).toBe(0)
    expect(commands(both)).not.toContain("login")
    const refused = await deploy(["logged-out"], { CLOUDFLARE_API_TOKEN: "token", CLOUDFLARE_ACCOUNT_ID: "0123" })
    expect(refused.code).toBe(1)
    expect(refused.output).toContain("refused CLOUDFLARE_API_TOKEN")
    expect(commands(refused)).toEqual(["whoami"])
  })

  it("R2 not enabled: says exactly where to enable it, and deploys nothing", async () => {
    const run = await deploy(["r2-off"])
    expect(run.code).toBe(1)
    expect(commands(run)).toEqual(["whoami", "r2 bucket create"])
    expect(run.output).toContain("R2 is not enabled on this Cloudflare account")
    expect(run.output).toContain("https://dash.cloudflare.com/?to=/:account/r2/overview")
    expect(run.output).toContain("npm run deploy")
  })

  it("a failed deploy: shows wrangler's error, prints no key, leaves no secrets file", async () => {
    const run = await deploy(["deploy-fails"])
    expect(run.code).toBe(1)
    expect(run.output).toContain("wrangler deploy failed")
    expect(run.output).toContain("Authentication error [code: 10000]")
    expect(run.output).not.toMatch(/sk-gw-/)
    const file = run.calls.find((call) => call.args[0] === "deploy")?.args[2] ?? ""
    expect(file).not.toBe("")
    expect(existsSync(file)).toBe(false)
  })

  it("a deployed gateway that does not answer as it should fails the run, saying what it answered", async () => {
    deployed.healthy = false
    try {
      const run = await deploy(["bucket-present", "has-key"])
      expect(run.code).toBe(1)
      expect(run.output).toContain("/health answered 503")
    } finally {
      deployed.healthy = true
    }
  })
})

describe("npm run key", () => {
  it("prints a new key of 256 random bits and its SHA-256, a different key each run", () => {
    const run = () => {
      const output = spawnSync(process.execPath, ["scripts/key.ts"], { encoding: "utf8" }).stdout
      const key = /^key\s+(sk-gw-[A-Za-z0-9_-]{43})$/m.exec(output)?.[1] ?? ""
      const hash = /^sha256\s+([0-9a-f]{64})$/m.exec(output)?.[1]
      return { key, hash }
    }
    const first = run()
    expect(first.hash).toBe(createHash("sha256").update(first.key).digest("hex"))
    expect(run().key).not.toBe(first.key)
  })
})
