import { createHash } from "node:crypto"
import { ConfigProvider, Context } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { makeHandler } from "../../src/App.ts"
import type { KeyReport } from "../../src/domain/ApiKey.ts"
import type { KeyLimitsNamespace } from "../../src/services/WorkerBindings.ts"
import { WorkerContext } from "../../src/services/WorkerContext.ts"
import { limitsNamespace, usageNamespace } from "../support/nodeStores.ts"

/**
 * Named keys through the whole gateway in Node (as the mutation tests see it): the limits objects are
 * KeyLedgers on Node's own SQLite, one per key name as in the Worker, and the statistics a UsageDb. The
 * workerd tests (test/workers/keys.test.ts) run the same against the real Durable Objects.
 */
const ADMIN = "sk-unit-admin-0001"
const USER = "sk-unit-user-0001"
const HASHED = "sk-unit-hashed-0001"
const QUOTA = "sk-unit-quota-0001"
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")

const KEYS = JSON.stringify([
  { name: "ops", key: ADMIN, role: "admin" },
  // The same model twice (by alias and by id) is one model.
  { name: "alice", key: USER, role: "user", models: ["preview", "local/preview"] },
  { name: "bob", sha256: sha256(HASHED).toUpperCase(), role: "user", rpm: 2 },
  { name: "carol", key: QUOTA, role: "user", imagesPerDay: 4 }
])

const disposers: Array<() => Promise<void>> = []
afterAll(async () => {
  for (const dispose of disposers) await dispose()
})

/** `limits: null`: no KEY_LIMITS binding. */
const gateway = (env: Record<string, string> = {}, limits: KeyLimitsNamespace | null = limitsNamespace()) => {
  const app = makeHandler(
    ConfigProvider.fromUnknown({
      API_KEYS: "unit-api-key",
      KEYS,
      ENABLE_LOCAL_MODEL: "true",
      DEFAULT_MODEL: "local/preview",
      MODEL_ALIASES: JSON.stringify({ preview: "local/preview" }),
      // No network here: the other models fail at once, as an upstream that is down.
      UPSTREAM_URL: "http://127.0.0.1:9",
      UPSTREAM_MAX_ATTEMPTS: "1",
      LOG_LEVEL: "None",
      ...env
    }),
    { usage: usageNamespace(), ...(limits === null ? {} : { limits }) }
  )
  disposers.push(app.dispose)
  const pending: Array<Promise<unknown>> = []
  const context = Context.make(WorkerContext, { waitUntil: (promise) => pending.push(promise) }) as Context.Context<never>
  const call = (path: string, key: string, init: RequestInit = {}) =>
    app.handler(
      new Request(`http://gateway.test${path}`, {
        ...init,
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...init.headers }
      }),
      context
    )
  const generate = (key: string, body: Record<string, unknown> = {}) =>
    call("/v1/images/generations", key, {
      method: "POST",
      body: JSON.stringify({ prompt: "a lighthouse", response_format: "b64_json", ...body })
    })
  /** The work left to `waitUntil` (usage records, refunds), until none is left. */
  const settled = async () => {
    while (pending.length > 0) await Promise.all(pending.splice(0))
  }
  return { call, generate, settled }
}

const errorOf = async (response: Response) =>
  ((await response.json()) as { error: { message: string; type: string; param: string | null; code: string | null } }).error

describe("named keys (KEYS) in Node", () => {
  it("identifies each key: plain, by its SHA-256 (in any case), API_KEYS, and refuses others", async () => {
    const { call } = gateway()
    for (const [key, name] of [
      [ADMIN, "ops"],
      [USER, "alice"],
      [HASHED, "bob"],
      ["unit-api-key", "API_KEYS #1"]
    ] as const) {
      const me = await call("/v1/me", key)
      expect(me.status, name).toBe(200)
      expect(((await me.json()) as KeyReport).name).toBe(name)
    }
    const wrong = await call("/v1/me", `${HASHED}!`)
    expect(wrong.status).toBe(401)
    expect((await errorOf(wrong)).code).toBe("invalid_api_key")
    const empty = await call("/v1/me", " ")
    expect(empty.status).toBe(401)
    expect((await errorOf(empty)).code).toBeNull()
    // Surrounding spaces are not part of a key.
    expect((await call("/v1/me", ` ${USER} `)).status).toBe(200)
  })

  it("a gateway whose only keys are stored as hashes, with no API_KEYS, accepts them", async () => {
    const app = makeHandler(
      ConfigProvider.fromUnknown({
        KEYS: JSON.stringify([{ name: "only", sha256: sha256(HASHED), role: "admin" }]),
        LOG_LEVEL: "None"
      }),
      {}
    )
    disposers.push(app.dispose)
    const me = await app.handler(new Request("http://gateway.test/v1/me", { headers: { authorization: `Bearer ${HASHED}` } }))
    expect(me.status).toBe(200)
    expect(((await me.json()) as KeyReport).name).toBe("only")
  })

  it("a user key gets 403 permission_denied on /v1/gateway routes; an admin of KEYS does not", async () => {
    const { call } = gateway()
    const refused = await call("/v1/gateway/keys", USER)
    expect(refused.status).toBe(403)
    expect(await errorOf(refused)).toMatchObject({ type: "invalid_request_error", code: "permission_denied", param: null })
    expect((await call("/v1/gateway/keys", ADMIN)).status).toBe(200)
  })

  it("an allow-list: the models listed by id or alias, a 404 for any other, its first model when none is asked for", async () => {
    const { call, generate } = gateway({ DEFAULT_MODEL: "replicate/flux-schnell" })
    const listed = (await (await call("/v1/models", USER)).json()) as { data: Array<{ id: string }> }
    expect(listed.data.map((model) => model.id)).toEqual(["local/preview"])
    expect((await call("/v1/models/local/preview", USER)).status).toBe(200)
    expect((await call("/v1/models/replicate/flux-schnell", USER)).status).toBe(404)
    const other = await generate(USER, { model: "replicate/flux-schnell" })
    expect(other.status).toBe(404)
    expect(await errorOf(other)).toMatchObject({ code: "model_not_found", param: "model" })
    // The gateway's default is not in alice's list: her first model serves a request without one.
    const byDefault = await generate(USER)
    expect(byDefault.status).toBe(200)
    const me = (await (await call("/v1/me", USER)).json()) as KeyReport
    expect(me.models).toEqual(["local/preview"])
    expect(me.limits).toEqual({ rpm: null, imagesPerDay: null })
    const admin = await call("/v1/models", ADMIN)
    expect(((await admin.json()) as { data: Array<unknown> }).data.length).toBeGreaterThan(1)
  })

  it("rpm: the third request in a minute is a 429 rate_limit_exceeded with retry-after", async () => {
    const { generate } = gateway()
    expect((await generate(HASHED)).status).toBe(200)
    expect((await generate(HASHED)).status).toBe(200)
    const limited = await generate(HASHED)
    expect(limited.status).toBe(429)
    const retryAfter = Number(limited.headers.get("retry-after"))
    expect(retryAfter).toBeGreaterThanOrEqual(59)
    expect(retryAfter).toBeLessThanOrEqual(60)
    expect(limited.headers.get("x-should-retry")).toBeNull()
    const error = await errorOf(limited)
    expect(error).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded", param: null })
    expect(error.message).toContain("2 requests per minute")
  })

  it("imagesPerDay: n is charged, a request past the quota is 429 insufficient_quota, and failures are given back", async () => {
    const limits = limitsNamespace()
    const { call, generate, settled } = gateway({}, limits)
    expect((await generate(QUOTA, { n: 3 })).status).toBe(200)
    const over = await generate(QUOTA, { n: 2 })
    expect(over.status).toBe(429)
    expect(over.headers.get("x-should-retry")).toBe("false")
    const seconds = Number(over.headers.get("retry-after"))
    expect(seconds).toBeGreaterThan(0)
    expect(seconds).toBeLessThanOrEqual(86_400)
    const error = await errorOf(over)
    expect(error).toMatchObject({ type: "insufficient_quota", code: "insufficient_quota", param: "n" })
    expect(error.message).toContain("4 images a day")
    expect(error.message).toContain("3 are used and this request asks for 2")
    expect(error.message).toMatch(/resets at \d{4}-\d\d-\d\dT00:00:00Z/)
    // One image, refused by the model with nothing served: it is given back when the request ends.
    const refused = await generate(QUOTA, { model: "replicate/flux-schnell", prompt: "x" })
    expect(refused.status).toBeGreaterThanOrEqual(400)
    await settled()
    const me = (await (await call("/v1/me", QUOTA)).json()) as KeyReport
    expect(me.today.images).toBe(3)
    expect(me.today.limit).toBe(4)
    expect(me.today.resetsAt % 86_400_000).toBe(0)
    expect(me.today.resetsAt).toBeGreaterThan(Date.now())
    expect(me.today.resetsAt).toBeLessThanOrEqual(Date.now() + 86_400_000)
    const one = await generate(QUOTA, { n: 1, response_format: "b64_json" })
    expect(one.status).toBe(200)
    expect((await generate(QUOTA)).status).toBe(429)
    // Only keys with limits have an object.
    expect([...limits.ledgers.keys()]).toEqual(["carol"])
  })

  it("a limiter that fails: through with LIMITS_FAIL_OPEN (the default), 503 limits_unavailable without", async () => {
    const down: KeyLimitsNamespace = {
      getByName: () => ({
        admit: () => Promise.reject(new Error("down")),
        refund: () => Promise.reject(new Error("down")),
        today: () => Promise.reject(new Error("down"))
      })
    }
    const open = gateway({}, down)
    expect((await open.generate(QUOTA)).status).toBe(200)
    expect(((await (await open.call("/v1/me", QUOTA)).json()) as KeyReport).today.images).toBeNull()
    const closed = gateway({ LIMITS_FAIL_OPEN: "false" }, down)
    const refused = await closed.generate(QUOTA)
    expect(refused.status).toBe(503)
    expect(refused.headers.get("retry-after")).toBe("5")
    expect(await errorOf(refused)).toMatchObject({ type: "server_error", code: "limits_unavailable" })
    expect((await closed.generate(USER)).status).toBe(200)
    // No binding at all counts as a limiter that does not answer.
    const unbound = gateway({ LIMITS_FAIL_OPEN: "false" }, null)
    const message = (await errorOf(await unbound.generate(QUOTA))).message
    expect(message).toContain("refuses requests it cannot count")
  })

  it("usage per key: /v1/gateway/keys reports each key by name, with its traffic, quota and limits", async () => {
    const { call, generate, settled } = gateway()
    expect((await generate(USER)).status).toBe(200)
    expect((await generate(USER, { model: "replicate/flux-schnell" })).status).toBe(404)
    expect((await generate(QUOTA, { n: 2 })).status).toBe(200)
    await settled()
    const response = await call("/v1/gateway/keys?window=1h", ADMIN)
    const text = await response.text()
    for (const secret of [ADMIN, USER, HASHED, QUOTA, sha256(HASHED), "unit-api-key"]) expect(text).not.toContain(secret)
    const { window, data } = JSON.parse(text) as { window: string; data: Array<KeyReport> }
    expect(window).toBe("1h")
    expect(data.map((key) => [key.name, key.source, key.role])).toEqual([
      ["API_KEYS #1", "API_KEYS", "admin"],
      ["ops", "KEYS", "admin"],
      ["alice", "KEYS", "user"],
      ["bob", "KEYS", "user"],
      ["carol", "KEYS", "user"]
    ])
    const alice = data.find((key) => key.name === "alice")!
    expect(alice.usage).toMatchObject({ key: "alice", requests: 2, generations: 2, images: 1, errors: 1 })
    expect(alice.today).toMatchObject({ images: null, limit: null })
    const carol = data.find((key) => key.name === "carol")!
    expect(carol.usage).toMatchObject({ requests: 1, images: 2, errors: 0 })
    expect(carol.today).toMatchObject({ images: 2, limit: 4 })
    expect(data.find((key) => key.name === "bob")!.limits).toEqual({ rpm: 2, imagesPerDay: null })
    expect(data.find((key) => key.name === "ops")!.usage).toMatchObject({ requests: 0, images: 0 })
    const events = (await (await call("/v1/gateway/requests", ADMIN)).json()) as { data: Array<{ key: string | null }> }
    expect(events.data.map((event) => event.key)).toEqual(["carol", "alice", "alice"])
  })

  it("the development key still works on localhost beside KEYS, and named keys work there too", async () => {
    const app = makeHandler(
      ConfigProvider.fromUnknown({
        ENVIRONMENT: "development",
        KEYS,
        MODEL_ALIASES: JSON.stringify({ preview: "local/preview" }),
        LOG_LEVEL: "None"
      }),
      {}
    )
    disposers.push(app.dispose)
    const me = (key: string) =>
      app.handler(new Request("http://localhost:8787/v1/me", { headers: { authorization: `Bearer ${key}` } }))
    expect(((await (await me("sk-dev-local")).json()) as KeyReport).name).toBe("development")
    const keys = await app.handler(
      new Request("http://localhost:8787/v1/gateway/keys", { headers: { authorization: "Bearer sk-dev-local" } })
    )
    const listed = ((await keys.json()) as { data: Array<KeyReport> }).data
    expect(listed.map((key) => [key.name, key.source])).toEqual([
      ["ops", "KEYS"],
      ["alice", "KEYS"],
      ["bob", "KEYS"],
      ["carol", "KEYS"],
      ["development", "development"]
    ])
    expect(((await (await me(USER)).json()) as KeyReport).name).toBe("alice")
    const wrong = await me("sk-wrong-0000")
    expect(wrong.status).toBe(401)
    expect((await errorOf(wrong)).message).toContain("the keys of KEYS")
  })
})

describe("bad KEYS: a configuration error naming the entry, never a key", () => {
  const misconfigured = async (keys: unknown, env: Record<string, string> = {}) => {
    const app = makeHandler(
      ConfigProvider.fromUnknown({
        API_KEYS: "sk-admin-in-api-keys",
        KEYS: typeof keys === "string" ? keys : JSON.stringify(keys),
        ...env
      }),
      {}
    )
    disposers.push(app.dispose)
    const response = await app.handler(new Request("http://gateway.test/v1/models"))
    expect(response.status).toBe(500)
    const error = await errorOf(response)
    expect(error.code).toBe("gateway_misconfigured")
    return error.message
  }

  it.each([
    ["not JSON", "{", "KEYS is not valid JSON"],
    ["not an array", { name: "a" }, "KEYS must be a JSON array of objects"],
    ["an entry that is not an object", ["sk-a-key-in-a-list"], "KEYS entry #1 must be a JSON object"],
    [
      "an unknown field",
      [{ name: "a", key: "sk-aaaaaaaa", role: "user", Rpm: 1 }],
      "KEYS entry #1 ('a') has 'Rpm' (did you mean 'rpm'?)"
    ],
    [
      "a secret as a field name",
      [{ name: "a", key: "sk-aaaaaaaa", role: "user", "sk-secret-field": 1 }],
      "KEYS entry #1 ('a') has a field"
    ],
    ["a missing role", [{ name: "a", key: "sk-aaaaaaaa" }], "KEYS entry #1 ('a'): 'role' is missing or not valid"],
    ["a short key", [{ name: "a", key: "sk-1", role: "user" }], "'key' is missing or not valid"],
    ["a bad hash", [{ name: "a", sha256: "abc", role: "user" }], "'sha256' is missing or not valid"],
    ["neither key nor hash", [{ name: "a", role: "user" }], "KEYS entry #1 ('a') needs exactly one of 'key' and 'sha256'"],
    ["an empty allow-list", [{ name: "a", key: "sk-aaaaaaaa", role: "user", models: [] }], "'models' is missing or not valid"],
    ["rpm 0", [{ name: "a", key: "sk-aaaaaaaa", role: "user", rpm: 0 }], "'rpm' is missing or not valid"],
    [
      "imagesPerDay 1.5",
      [{ name: "a", key: "sk-aaaaaaaa", role: "user", imagesPerDay: 1.5 }],
      "'imagesPerDay' is missing or not valid"
    ],
    [
      "a duplicate name",
      [
        { name: "a", key: "sk-aaaaaaaa", role: "user" },
        { name: "b", key: "sk-bbbbbbbb", role: "user" },
        { name: "a", key: "sk-cccccccc", role: "user" }
      ],
      "KEYS entries #1 and #3 ('a') have the same name"
    ],
    [
      "a duplicate key",
      [
        { name: "a", key: "sk-aaaaaaaa", role: "user" },
        // A hash in capitals is the same hash.
        { name: "b", sha256: sha256("sk-aaaaaaaa").toUpperCase(), role: "admin" }
      ],
      "KEYS entry #2 ('b') has the same key as entry #1"
    ],
    [
      "a key of API_KEYS",
      [{ name: "a", key: "sk-admin-in-api-keys", role: "user" }],
      "KEYS entry #1 ('a') has the same key as a key of API_KEYS"
    ],
    [
      "an unknown model",
      [{ name: "a", key: "sk-aaaaaaaa", role: "user", models: ["local/nope"] }],
      "KEYS entry #1 ('a') allows the model 'local/nope'"
    ],
    ["a name that is not text", [{ name: 7, key: "sk-aaaaaaaa", role: "user" }], "KEYS entry #1: 'name' is missing or not valid"],
    [
      "a name with other characters",
      [{ name: "a/b", key: "sk-aaaaaaaa", role: "user" }],
      "KEYS entry #1: 'name' is missing or not valid"
    ],
    [
      "a name starting like a key",
      [{ name: "SK-team", key: "sk-aaaaaaaa", role: "user" }],
      "KEYS entry #1: 'name' is missing or not valid"
    ],
    [
      "a name shaped like a key",
      [{ name: "sk-live-abcdefgh", key: "sk-live-abcdefgh", role: "root" }],
      "KEYS entry #1: 'name' is missing or not valid"
    ],
    ["a name equal to its key", [{ name: "abcdefgh1234", key: "abcdefgh1234", role: "root" }], "KEYS entry #1: 'role'"]
  ] as const)("%s", async (_, keys, expected) => {
    const message = await misconfigured(keys)
    expect(message).toContain(expected)
    for (const secret of [
      "sk-aaaaaaaa",
      "sk-bbbbbbbb",
      "sk-cccccccc",
      "sk-admin-in-api-keys",
      "sk-secret-field",
      "sk-live",
      "abcdefgh1234",
      "sk-a-key"
    ]) {
      expect(message).not.toContain(secret)
    }
    expect(message).not.toMatch(/[0-9a-f]{64}/i)
  })
})
