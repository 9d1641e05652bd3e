/**
 * `npm run deploy`: from a clone to a working gateway on Cloudflare, safe to run again.
 *
 * 1. The account: a `wrangler login` session, or CLOUDFLARE_API_TOKEN with CLOUDFLARE_ACCOUNT_ID (CI; no prompt).
 * 2. The R2 bucket of wrangler.toml, created when missing; when R2 is not enabled on the account, what to click.
 * 3. An API key: when the Worker has neither an API_KEYS nor a KEYS secret yet, a new key is uploaded with the
 *    deploy (so the gateway never runs without one) and printed once. Existing keys are left as they are.
 * 4. `wrangler deploy`, then a check of the deployed URL: /health, /v1/models refused without a key, and,
 *    with a key it knows (the new one, or GATEWAY_API_KEY), /v1/models answered.
 *
 * Every Cloudflare call goes through the `wrangler` found on PATH (npm puts this project's first).
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { newApiKey } from "./apiKey.ts"

const R2_DASHBOARD = "https://dash.cloudflare.com/?to=/:account/r2/overview"
/** workers.dev can take a little while to answer for a Worker deployed the first time. */
const CHECK_FOR_MS = Number(process.env.DEPLOY_CHECK_MS ?? 60_000)

class Stop extends Error {}
const stop = (...lines: Array<string>): never => {
  throw new Stop(lines.join("\n"))
}
const step = (text: string) => console.log(`\n▸ ${text}`)

interface Run {
  readonly ok: boolean
  /** stdout and stderr together: wrangler writes its errors to either. */
  readonly output: string
}
const wrangler = (args: ReadonlyArray<string>, options: { interactive?: boolean } = {}): Run => {
  const result = spawnSync("wrangler", args, {
    encoding: "utf8",
    stdio: options.interactive === true ? "inherit" : ["ignore", "pipe", "pipe"],
    // On Windows the wrangler on PATH is a .cmd, which only a shell runs.
    shell: process.platform === "win32",
    env: { ...process.env, WRANGLER_SEND_METRICS: process.env.WRANGLER_SEND_METRICS ?? "false" }
  })
  if (result.error !== undefined) stop(`Could not run wrangler (${result.error.message}). Run npm install first.`)
  return { ok: result.status === 0, output: `${result.stdout ?? ""}${result.stderr ?? ""}` }
}

/** The Worker's and the bucket's names, from wrangler.toml (two plain string settings; no TOML parser needed). */
const config = readFileSync("wrangler.toml", "utf8")
const setting = (name: string) => {
  const value = new RegExp(`^${name}\\s*=\\s*"([^"]+)"`, "m").exec(config)?.[1]
  return value ?? stop(`wrangler.toml has no ${name}.`)
}
const workerName = setting("name")
const bucketName = setting("bucket_name")

const signIn = () => {
  step("Cloudflare account")
  const token = process.env.CLOUDFLARE_API_TOKEN
  if (token !== undefined && token !== "" && (process.env.CLOUDFLARE_ACCOUNT_ID ?? "") === "") {
    stop(
      "CLOUDFLARE_API_TOKEN is set but CLOUDFLARE_ACCOUNT_ID is not.",
      "Set both (the account id is on the dashboard's Workers overview): a deploy without a prompt needs to know the account."
    )
  }
  const loggedIn = () => {
    const whoami = wrangler(["whoami"])
    return whoami.ok && !/not authenticated|not logged in/i.test(whoami.output)
  }
  if (loggedIn()) return console.log("  signed in")
  if (token !== undefined && token !== "") {
    stop("Cloudflare refused CLOUDFLARE_API_TOKEN. It needs the 'Edit Cloudflare Workers' permissions, R2 included.")
  }
  if (!process.stdin.isTTY) {
    stop(
      "Not signed in to Cloudflare, and there is no terminal to sign in from.",
      "Run `npx wrangler login` once, or set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID (CI)."
    )
  }
  console.log("  not signed in: wrangler opens the browser to sign in")
  wrangler(["login"], { interactive: true })
  if (!loggedIn()) stop("Still not signed in. Run `npx wrangler login`, then `npm run deploy` again.")
}

const ensureBucket = () => {
  step(`R2 bucket ${bucketName}`)
  const created = wrangler(["r2", "bucket", "create", bucketName])
  if (created.ok) return console.log("  created")
  if (/already exists|\[code: 10004\]/i.test(created.output)) return console.log("  present")
  if (/enable R2|\[code: 10042\]/i.test(created.output)) {
    stop(
      "R2 is not enabled on this Cloudflare account. Hosted image URLs need it (the free tier is enough).",
      `  1. Open ${R2_DASHBOARD}`,
      "  2. Click 'Purchase R2 Plan' / 'Enable R2' and confirm the free plan (Cloudflare asks for a payment method).",
      "  3. Run `npm run deploy` again."
    )
  }
  stop(`Creating the bucket failed:\n${created.output.trim()}`)
}

/** Whether the Worker already has keys, API_KEYS or named KEYS (a Worker that does not exist yet has none). */
const hasKeys = () => {
  const listed = wrangler(["secret", "list", "--format", "json"])
  if (!listed.ok) return false
  const json = listed.output.slice(listed.output.indexOf("["), listed.output.lastIndexOf("]") + 1)
  try {
    const secrets = JSON.parse(json) as ReadonlyArray<{ name?: unknown }>
    return secrets.some((secret) => secret.name === "API_KEYS" || secret.name === "KEYS")
  } catch {
    return false
  }
}

const deploy = (newKey: string | undefined): string | undefined => {
  step(`Deploying ${workerName}`)
  const directory = mkdtempSync(join(tmpdir(), "ai-image-gateway-deploy-"))
  const secrets = join(directory, "secrets.json")
  try {
    const args = ["deploy"]
    if (newKey !== undefined) {
      writeFileSync(secrets, JSON.stringify({ API_KEYS: newKey }), { mode: 0o600 })
      args.push("--secrets-file", secrets)
    }
    const deployed = wrangler(args)
    if (!deployed.ok) {
      stop(
        `wrangler deploy failed; nothing was changed by this run past the bucket:\n${deployed.output.trim()}`,
        /workers\.dev subdomain/i.test(deployed.output)
          ? "\nRegister a workers.dev subdomain (dashboard → Workers & Pages → your subdomain), then run `npm run deploy` again."
          : "\nFix the cause above, then run `npm run deploy` again."
      )
    }
    // wrangler lists the triggers after "Deployed <name> triggers": the workers.dev URL is the one with a scheme.
    const triggers = deployed.output.slice(deployed.output.search(/Deployed .* triggers/))
    return /^\s+(https?:\/\/\S+?)\/?\s*$/m.exec(triggers)?.[1]
  } finally {
    rmSync(directory, { recursive: true, force: true })
  }
}

/** Polls until the deployed gateway answers as it should, or the time is up; gives what failed. */
const check = async (url: string, key: string | undefined): Promise<string | undefined> => {
  const probe = async (): Promise<string | undefined> => {
    const health = await fetch(`${url}/health`)
    if (health.status !== 200) return `/health answered ${health.status}`
    const anonymous = await fetch(`${url}/v1/models`)
    if (anonymous.status !== 401) return `/v1/models without a key answered ${anonymous.status}, not 401`
    if (key === undefined) return undefined
    const models = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })
    if (models.status !== 200) return `/v1/models with the key answered ${models.status}`
    const body = (await models.json()) as { data?: ReadonlyArray<unknown> }
    return (body.data?.length ?? 0) > 0 ? undefined : "/v1/models listed no model"
  }
  const until = Date.now() + CHECK_FOR_MS
  let problem: string | undefined = "not reached"
  do {
    problem = await probe().catch((error: unknown) => `not reachable yet (${(error as Error).message})`)
    if (problem === undefined) return undefined
    await new Promise((resolve) => setTimeout(resolve, 2000))
  } while (Date.now() < until)
  return problem
}

const main = async () => {
  signIn()
  ensureBucket()
  step("API key")
  const newKey = hasKeys() ? undefined : newApiKey()
  console.log(
    newKey === undefined
      ? "  API_KEYS or KEYS is set; kept as it is"
      : "  neither API_KEYS nor KEYS is set: a new key goes up with this deploy (as API_KEYS)"
  )
  const url = deploy(newKey)
  if (url === undefined) {
    console.log("\nDeployed. wrangler printed no workers.dev URL (routes only?), so the check is skipped.")
  } else {
    step(`Checking ${url}`)
    const key = newKey ?? process.env.GATEWAY_API_KEY
    const problem = await check(url, key)
    if (problem !== undefined) stop(`Deployed, but the gateway does not answer as it should: ${problem}.`)
    console.log(
      key === undefined ? "  healthy; keys are enforced (set GATEWAY_API_KEY to check one too)" : "  healthy; the key works"
    )
  }
  console.log("\nDone.")
  if (url !== undefined) {
    console.log(`  API:      ${url}/v1  (OpenAI base URL)`)
    console.log(`  Cockpit:  ${url}/`)
    console.log(`  Docs:     ${url}/docs`)
  }
  if (newKey !== undefined) {
    console.log(`  Key:      ${newKey}`)
    console.log("            (the API_KEYS secret; shown this once. Add keys with `npx wrangler secret put API_KEYS`.)")
  } else console.log("  Key:      your existing API_KEYS or KEYS secret")
}

main().catch((error: unknown) => {
  console.error(error instanceof Stop ? `\n✘ ${error.message}` : error)
  process.exit(1)
})
