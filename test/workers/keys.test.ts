import { afterAll, describe, expect, it } from "vitest"
import type { KeyReport } from "../../src/domain/ApiKey.ts"
import type { UsageEvent } from "../../src/domain/Usage.ts"
import { errorOf, isolatedGateway, jsonPost, steered, upstreamCalls, upstreamReaches } from "./helpers.ts"

/**
 * Named keys (KEYS), each case on a gateway of its own inside workerd with the real limits Durable
 * Objects (one per key) and statistics object, under names of its own (`isolatedGateway`).
 */
const sha256Hex = async (text: string) =>
  [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)))]
    .map((byte) => byte.toString(16).padStart(2, "0"))
    .join("")

const ADMIN = "sk-ops-0123456789"
const ALICE = "sk-alice-0123456789"
const BOB = "sk-bob-hashed-0123456789"
const CAROL = "sk-carol-0123456789"
const DAVE = "sk-dave-0123456789"

const keys = async (extra: ReadonlyArray<Record<string, unknown>> = []) =>
  JSON.stringify([
    { name: "ops", key: ADMIN, role: "admin" },
    { name: "alice", key: ALICE, role: "user", models: ["local/preview"] },
    { name: "bob", sha256: await sha256Hex(BOB), role: "user", rpm: 2 },
    { name: "carol", key: CAROL, role: "user", imagesPerDay: 5 },
    { name: "dave", key: DAVE, role: "user", imagesPerDay: 6 },
    ...extra
  ])

const gateways: Array<ReturnType<typeof isolatedGateway>> = []
const gateway = async (vars: Record<string, string> = {}, bindings: Parameters<typeof isolatedGateway>[1] = {}) => {
  const made = isolatedGateway({ KEYS: await keys(), ...vars }, bindings)
  gateways.push(made)
  return made
}
afterAll(async () => {
  for (const made of gateways) await made.dispose()
})

const image = (prompt = "a lighthouse", fields: Record<string, unknown> = {}) =>
  jsonPost({ model: "local/preview", prompt, response_format: "b64_json", ...fields })

describe("roles", () => {
  it("a user key generates and reads itself, but every /v1/gateway route answers 403 permission_denied", async () => {
    const { call, dispose } = await gateway()
    const made = await call("/v1/images/generations", { ...image(), key: ALICE })
    expect(made.status).toBe(200)
    await made.arrayBuffer()
    for (const path of ["/v1/gateway/status", "/v1/gateway/stats", "/v1/gateway/requests", "/v1/gateway/keys"]) {
      const refused = await call(path, { key: ALICE })
      expect(refused.status, path).toBe(403)
      const error = await errorOf(refused)
      expect(error.code).toBe("permission_denied")
      expect(error.type).toBe("invalid_request_error")
    }
    const probe = await call("/v1/gateway/probe", { ...jsonPost({}), key: ALICE })
    expect(probe.status).toBe(403)
    await probe.arrayBuffer()
    const me = await call("/v1/me", { key: ALICE })
    expect(me.status).toBe(200)
    const report = (await me.json()) as KeyReport
    expect(report).toMatchObject({ name: "alice", role: "user", source: "KEYS", models: ["local/preview"] })
    await dispose()
  })

  it("an admin key of KEYS and a key of API_KEYS read the gateway's routes", async () => {
    const { call } = await gateway()
    for (const key of [ADMIN, "test-key"]) {
      const status = await call("/v1/gateway/status", { key })
      expect(status.status).toBe(200)
      await status.arrayBuffer()
    }
  })

  it("a key stored only as its SHA-256 is accepted, and a wrong key next to it is not", async () => {
    const { call } = await gateway()
    const ok = await call("/v1/models", { key: BOB })
    expect(ok.status).toBe(200)
    await ok.arrayBuffer()
    const wrong = await call("/v1/models", { key: `${BOB}x` })
    expect(wrong.status).toBe(401)
    expect((await errorOf(wrong)).code).toBe("invalid_api_key")
  })
})

describe("model allow-lists", () => {
  it("a key sees and uses only its models: others are 404 model_not_found, and no model means its first", async () => {
    const { call } = await gateway({ MODEL_ALIASES: JSON.stringify({ preview: "local/preview" }) })
    const listed = (await (await call("/v1/models", { key: ALICE })).json()) as { data: Array<{ id: string }> }
    expect(listed.data.map((model) => model.id)).toEqual(["local/preview"])
    const all = (await (await call("/v1/models", { key: ADMIN })).json()) as { data: Array<{ id: string }> }
    expect(all.data.length).toBeGreaterThan(1)

    const { id, prompt } = steered("")
    const other = await call("/v1/images/generations", { ...image(prompt, { model: "fake/backup" }), key: ALICE })
    expect(other.status).toBe(404)
    const error = await errorOf(other)
    expect(error).toMatchObject({ code: "model_not_found", param: "model" })
    expect(error.message).toContain("fake/backup")
    expect((await upstreamCalls(id)).calls).toBe(0)
    const retrieved = await call("/v1/models/fake/backup", { key: ALICE })
    expect(retrieved.status).toBe(404)
    await retrieved.arrayBuffer()

    const byAlias = await call("/v1/images/generations", { ...image("x", { model: "preview" }), key: ALICE })
    expect(byAlias.status).toBe(200)
    await byAlias.arrayBuffer()
    const byDefault = await call("/v1/images/generations", {
      ...jsonPost({ prompt: "no model given", response_format: "b64_json" }),
      key: ALICE
    })
    expect(byDefault.status).toBe(200)
    await byDefault.arrayBuffer()
    const chat = await call("/v1/chat/completions", {
      ...jsonPost({ model: "fake/backup", messages: [{ role: "user", content: "a cat" }] }),
      key: ALICE
    })
    expect(chat.status).toBe(404)
    await chat.arrayBuffer()
  })
})

describe("rpm", () => {
  it("past its requests per minute a key gets 429 rate_limit_exceeded with retry-after, before any upstream call", async () => {
    const { call } = await gateway()
    for (let i = 0; i < 2; i++) {
      const ok = await call("/v1/images/generations", { ...image(`ok ${i}`), key: BOB })
      expect(ok.status).toBe(200)
      await ok.arrayBuffer()
    }
    const { id, prompt } = steered("")
    const limited = await call("/v1/images/generations", { ...image(prompt, { model: undefined }), key: BOB })
    expect(limited.status).toBe(429)
    const retryAfter = Number(limited.headers.get("retry-after"))
    expect(retryAfter).toBeGreaterThanOrEqual(1)
    expect(retryAfter).toBeLessThanOrEqual(60)
    expect(limited.headers.get("x-should-retry")).toBeNull()
    const error = await errorOf(limited)
    expect(error).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded" })
    expect((await upstreamCalls(id)).calls).toBe(0)
    // Another key is not limited by bob's minute.
    const other = await call("/v1/images/generations", { ...image("other"), key: ALICE })
    expect(other.status).toBe(200)
    await other.arrayBuffer()
  })
})

describe("probes", () => {
  it("count against an admin key's limits, and past them answer 429 as a generation would, not a failed probe", async () => {
    const LIMITED = "sk-ops-limited-0123456789"
    const { call } = await gateway({ KEYS: await keys([{ name: "ops-limited", key: LIMITED, role: "admin", rpm: 1 }]) })
    const probe = () => call("/v1/gateway/probe", { ...jsonPost({ model: "local/preview" }), key: LIMITED })
    const first = await probe()
    expect(first.status).toBe(200)
    expect(await first.json()).toMatchObject({ ok: true })
    const limited = await probe()
    expect(limited.status).toBe(429)
    expect(await errorOf(limited)).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded" })
  })
})

describe("imagesPerDay", () => {
  it("counts n, refuses a request that would pass the quota with 429 insufficient_quota, and /v1/me shows the count", async () => {
    const { call } = await gateway()
    const three = await call("/v1/images/generations", { ...image("three", { n: 3 }), key: CAROL })
    expect(three.status).toBe(200)
    expect(((await three.json()) as { data: Array<unknown> }).data).toHaveLength(3)
    const tooMany = await call("/v1/images/generations", { ...image("three more", { n: 3 }), key: CAROL })
    expect(tooMany.status).toBe(429)
    expect(tooMany.headers.get("x-should-retry")).toBe("false")
    expect(Number(tooMany.headers.get("retry-after"))).toBeGreaterThan(0)
    const error = await errorOf(tooMany)
    expect(error).toMatchObject({ type: "insufficient_quota", code: "insufficient_quota", param: "n" })
    expect(error.message).toContain("5 images a day")
    const two = await call("/v1/images/generations", { ...image("two", { n: 2 }), key: CAROL })
    expect(two.status).toBe(200)
    await two.arrayBuffer()
    const me = (await (await call("/v1/me", { key: CAROL })).json()) as KeyReport
    expect(me.today).toMatchObject({ images: 5, limit: 5 })
    expect(me.limits).toEqual({ rpm: null, imagesPerDay: 5 })
  })

  it("images that fail upstream are given back to the quota", async () => {
    const { call, settled } = await gateway()
    // The default model is served by the fake ai-sdk app: one call per image, the first of three refused.
    const { prompt } = steered("faults=400,ok,ok")
    const partly = await call("/v1/images/generations", {
      ...jsonPost({ prompt, n: 3, response_format: "b64_json" }),
      key: CAROL
    })
    expect(partly.status).toBe(200)
    expect(((await partly.json()) as { data: Array<unknown> }).data).toHaveLength(2)
    const failed = await call("/v1/images/generations", {
      ...jsonPost({ prompt: steered("faults=400").prompt, response_format: "b64_json" }),
      key: CAROL
    })
    expect(failed.status).toBe(400)
    await failed.arrayBuffer()
    await settled()
    const me = (await (await call("/v1/me", { key: CAROL })).json()) as KeyReport
    expect(me.today.images).toBe(2)
    // Without a window, /v1/me reports the last 24 hours.
    expect(me.usage).toMatchObject({ key: "carol", requests: 2, generations: 2, images: 2, errors: 1 })
  })

  it("a request whose client went away before the answer began gives its reserved images back", async () => {
    const { call, settled } = await gateway()
    const { id, prompt } = steered("hold=1")
    const client = new AbortController()
    const answer = call("/v1/images/generations", {
      ...jsonPost({ model: "fake/patient", prompt, n: 3, response_format: "b64_json" }),
      key: CAROL,
      signal: client.signal
    })
    answer.catch(() => {}) // it rejects with the abort
    // The openai kind asks for each of the 3 images in a call of its own: all three held, then all three cancelled.
    await upstreamReaches(id, { inFlight: 3 })
    const held = (await (await call("/v1/me", { key: CAROL })).json()) as KeyReport
    expect(held.today.images).toBe(3)
    client.abort()
    await upstreamReaches(id, { aborted: 3 })
    await settled()
    const me = (await (await call("/v1/me", { key: CAROL })).json()) as KeyReport
    expect(me.today.images).toBe(0)
    const five = await call("/v1/images/generations", { ...image("all five", { n: 5 }), key: CAROL })
    expect(five.status).toBe(200)
    await five.arrayBuffer()
  })

  it("20 requests racing for the last 5 images of a quota: exactly 5 are served", async () => {
    const { call, settled } = await gateway()
    const first = await call("/v1/images/generations", { ...image("warm-up"), key: DAVE })
    expect(first.status).toBe(200)
    await first.arrayBuffer()
    // Dave's quota is 6 with 1 used: the last 5, raced by 20.
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => call("/v1/images/generations", { ...image(`race ${i}`), key: DAVE }))
    )
    const statuses = await Promise.all(
      answers.map(async (answer) => {
        await answer.arrayBuffer()
        return answer.status
      })
    )
    expect(statuses.filter((status) => status === 200)).toHaveLength(5)
    expect(statuses.filter((status) => status === 429)).toHaveLength(15)
    await settled()
    const me = (await (await call("/v1/me", { key: DAVE })).json()) as KeyReport
    expect(me.today.images).toBe(6)
  })

  it("counts edits and chat images against the same quota", async () => {
    const { call } = await gateway()
    const chat = await call("/v1/chat/completions", {
      ...jsonPost({ model: "local/preview", messages: [{ role: "user", content: "a cat --n 4" }] }),
      key: CAROL
    })
    expect(chat.status).toBe(200)
    await chat.arrayBuffer()
    const form = new FormData()
    const png = await (await call("/v1/images/generations", { ...image("source"), key: ADMIN })).json()
    const bytes = Uint8Array.from(atob((png as { data: Array<{ b64_json: string }> }).data[0]!.b64_json), (c) => c.charCodeAt(0))
    form.append("image", new Blob([bytes], { type: "image/png" }), "in.png")
    form.append("prompt", "make it purple")
    form.append("model", "local/preview")
    form.append("n", "2")
    const edit = await call("/v1/images/edits", { method: "POST", body: form, key: CAROL })
    expect(edit.status).toBe(429)
    expect((await errorOf(edit)).code).toBe("insufficient_quota")
  })
})

describe("a limiter that does not answer", () => {
  const down = {
    limits: {
      getByName: () => ({
        admit: () => Promise.reject(new Error("limits store down")),
        refund: () => Promise.reject(new Error("limits store down")),
        today: () => Promise.reject(new Error("limits store down"))
      })
    }
  }

  it("LIMITS_FAIL_OPEN=true (the default): requests of keys with limits go through", async () => {
    const { call } = await gateway({}, down)
    const ok = await call("/v1/images/generations", { ...image(), key: CAROL })
    expect(ok.status).toBe(200)
    await ok.arrayBuffer()
    const me = (await (await call("/v1/me", { key: CAROL })).json()) as KeyReport
    expect(me.today.images).toBeNull()
  })

  it("LIMITS_FAIL_OPEN=false: they get 503 limits_unavailable with retry-after; keys without limits are not touched", async () => {
    const { call } = await gateway({ LIMITS_FAIL_OPEN: "false" }, down)
    const refused = await call("/v1/images/generations", { ...image(), key: CAROL })
    expect(refused.status).toBe(503)
    expect(refused.headers.get("retry-after")).toBe("5")
    const error = await errorOf(refused)
    expect(error).toMatchObject({ type: "server_error", code: "limits_unavailable" })
    expect(error.message).not.toContain("carol")
    const unlimited = await call("/v1/images/generations", { ...image(), key: ALICE })
    expect(unlimited.status).toBe(200)
    await unlimited.arrayBuffer()
  })
})

describe("bad KEYS values: a configuration error naming the entry, never a key", () => {
  const cases: ReadonlyArray<readonly [string, string, string]> = [
    ["not JSON", "[{", "KEYS is not valid JSON"],
    ["not an array", JSON.stringify({ name: "x" }), "KEYS must be a JSON array"],
    [
      "a duplicate name",
      JSON.stringify([
        { name: "a", key: "sk-first-12345678", role: "user" },
        { name: "a", key: "sk-second-12345678", role: "user" }
      ]),
      "KEYS entries #1 and #2 ('a') have the same name"
    ],
    [
      "a duplicate key",
      JSON.stringify([
        { name: "a", key: "sk-same-12345678", role: "user" },
        { name: "b", key: "sk-same-12345678", role: "admin" }
      ]),
      "KEYS entry #2 ('b') has the same key as entry #1"
    ],
    [
      "a key also stored as its hash",
      JSON.stringify([
        { name: "a", key: "sk-same-12345678", role: "user" },
        { name: "b", sha256: "HASH", role: "user" }
      ]),
      "KEYS entry #2 ('b') has the same key as entry #1"
    ],
    [
      "a key of API_KEYS",
      JSON.stringify([{ name: "a", key: "test-key-again", role: "user" }]),
      "KEYS entry #1 ('a') has the same key as a key of API_KEYS"
    ],
    [
      "both key and sha256",
      JSON.stringify([{ name: "a", key: "sk-both-12345678", sha256: "0".repeat(64), role: "user" }]),
      "needs exactly one of 'key' and 'sha256'"
    ],
    ["a bad role", JSON.stringify([{ name: "a", key: "sk-role-12345678", role: "root" }]), "'role' is missing or not valid"],
    [
      "an unknown model",
      JSON.stringify([{ name: "a", key: "sk-model-12345678", role: "user", models: ["nope/model"] }]),
      "KEYS entry #1 ('a') allows the model 'nope/model'"
    ],
    [
      "a key in the name field",
      JSON.stringify([{ name: "sk-live-abcdef123456", key: "sk-live-abcdef123456", role: "user", rpm: 0 }]),
      "KEYS entry #1: 'name' is missing or not valid"
    ]
  ]

  it.each(cases)("%s", async (_, value, expected) => {
    const text = value.replace("HASH", await sha256Hex("sk-same-12345678"))
    const { call } = isolatedGateway({ KEYS: text, API_KEYS: "test-key,test-key-again" })
    const response = await call("/v1/models")
    expect(response.status).toBe(500)
    const error = await errorOf(response)
    expect(error.code).toBe("gateway_misconfigured")
    expect(error.message).toContain(expected)
    for (const secret of ["sk-first", "sk-second", "sk-same", "sk-both", "sk-role", "sk-model", "sk-live", "test-key-again"]) {
      expect(error.message).not.toContain(secret)
    }
    expect(error.message).not.toMatch(/[0-9a-f]{64}/)
  })
})

describe("usage per key", () => {
  it("records the key's name on every event, and /v1/gateway/keys reports each key without its key", async () => {
    const { call, settled } = await gateway()
    for (const key of [ALICE, ALICE, CAROL]) {
      const made = await call("/v1/images/generations", { ...image(), key })
      expect(made.status).toBe(200)
      await made.arrayBuffer()
    }
    const refused = await call("/v1/images/generations", { ...image("x", { model: "fake/backup" }), key: ALICE })
    expect(refused.status).toBe(404)
    await refused.arrayBuffer()
    await settled()
    // Events reach the statistics object in batches after the response: wait for them.
    let events: Array<UsageEvent> = []
    for (let i = 0; i < 60 && events.filter((event) => event.key === "alice").length < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      events = ((await (await call("/v1/gateway/requests", { key: ADMIN })).json()) as { data: Array<UsageEvent> }).data
    }
    expect(events.filter((event) => event.key === "alice").map((event) => event.status)).toEqual([404, 200, 200])
    const text = await (await call("/v1/gateway/keys?window=1h", { key: ADMIN })).text()
    for (const secret of [ADMIN, ALICE, BOB, CAROL, DAVE, await sha256Hex(BOB), "test-key"]) expect(text).not.toContain(secret)
    const { window, data } = JSON.parse(text) as { window: string; data: Array<KeyReport> }
    expect(window).toBe("1h")
    expect(data.map((key) => key.name)).toEqual(["API_KEYS #1", "API_KEYS #2", "ops", "alice", "bob", "carol", "dave"])
    const alice = data.find((key) => key.name === "alice")
    expect(alice?.usage).toMatchObject({ requests: 3, generations: 3, images: 2, errors: 1 })
    expect(alice?.usage?.latencyMs.p50).not.toBeNull()
    const carol = data.find((key) => key.name === "carol")
    expect(carol?.today).toMatchObject({ images: 1, limit: 5 })
    expect(data.find((key) => key.name === "bob")?.source).toBe("KEYS")
    expect(data.find((key) => key.name === "API_KEYS #1")).toMatchObject({ role: "admin", source: "API_KEYS", models: null })
  })
})
