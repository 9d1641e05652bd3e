import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test"
import { env, exports } from "cloudflare:workers"
import { ConfigProvider, Context } from "effect"
import { expect, inject } from "vitest"
import { type Bindings, makeHandler, runScheduled } from "../../src/App.ts"
import type { UsageEvent } from "../../src/domain/Usage.ts"
import { WorkerBindings } from "../../src/services/WorkerBindings.ts"
import { WorkerContext } from "../../src/services/WorkerContext.ts"

export const KEY = "test-key"

/** Calls the Worker under test inside workerd, exactly as a client would. */
export const call = (path: string, init: RequestInit & { key?: string | null } = {}) => {
  const { key = KEY, ...rest } = init
  const headers = new Headers(rest.headers)
  if (key !== null) headers.set("authorization", `Bearer ${key}`)
  return exports.default.fetch(new Request(`https://gateway.test${path}`, { ...rest, headers }))
}

export const generate = (body: unknown, init: RequestInit & { key?: string | null } = {}) =>
  call("/v1/images/generations", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" || body instanceof ReadableStream ? body : JSON.stringify(body),
    ...init
  })

/** A prompt that steers the fake upstream, with an id unique to the calling test. */
export const steered = (directives: string, text = "a lighthouse at dusk") => {
  const id = crypto.randomUUID()
  return { id, prompt: `${text} [[id=${id} ${directives}]]` }
}

export const upstreamCalls = async (
  id: string
): Promise<{
  calls: number
  aborted: number
  peakInFlight: number
  arrivals: Array<number>
  requests: Array<Record<string, unknown>>
}> => {
  const response = await fetch(`${inject("fakeUpstreamUrl")}/__calls?id=${id}`)
  return (await response.json()) as {
    calls: number
    aborted: number
    peakInFlight: number
    arrivals: Array<number>
    requests: Array<Record<string, unknown>>
  }
}

/** Waits, on the fake upstream's own events, until the calls of `id` reach a count (`{ inFlight: 2 }`). */
export const upstreamReaches = async (
  id: string,
  count: { readonly inFlight?: number; readonly aborted?: number; readonly calls?: number }
) => {
  const [name, value] = Object.entries(count)[0] ?? ["calls", 0]
  const response = await fetch(`${inject("fakeUpstreamUrl")}/__wait?id=${id}&${name}=${value}`)
  return (await response.json()) as { calls: number; inFlight: number; aborted: number }
}

/** Lets the fake upstream answer the calls of `id` that `hold=1` keeps waiting. */
export const releaseUpstream = (id: string) => fetch(`${inject("fakeUpstreamUrl")}/__release?id=${id}`, { method: "POST" })

export interface ErrorJson {
  readonly error: { readonly message: string; readonly type: string; readonly param: string | null; readonly code: string | null }
}

/** Asserts the OpenAI error shape and returns it. */
export const errorOf = async (response: Response): Promise<ErrorJson["error"]> => {
  if (!(response.headers.get("content-type") ?? "").startsWith("application/json")) {
    throw new Error(`expected JSON, got ${response.headers.get("content-type")}`)
  }
  const body = (await response.json()) as ErrorJson
  const keys = Object.keys(body.error).sort()
  if (keys.join(",") !== "code,message,param,type" || Object.keys(body).length !== 1) {
    throw new Error(`not OpenAI's error shape: ${JSON.stringify(body)}`)
  }
  return body.error
}

/** Usage events reach the statistics Durable Object after the response, in batches, so these poll. */
export const recent = async (): Promise<Array<UsageEvent>> => {
  const response = await call("/v1/gateway/requests?limit=200")
  expect(response.status).toBe(200)
  return ((await response.json()) as { data: Array<UsageEvent> }).data
}

/** The first recorded event that `matches`, once it is written (events go to the store after the response). */
export const eventWhere = async (matches: (event: UsageEvent) => boolean, what: string): Promise<UsageEvent> => {
  for (let i = 0; i < 100; i++) {
    const found = (await recent()).find(matches)
    if (found !== undefined) return found
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`no usage event for ${what}`)
}

/** The recorded event of the request that answered with `response`, once it is written. */
export const eventOf = async (response: Response): Promise<UsageEvent> => {
  const requestId = response.headers.get("x-request-id")
  expect(requestId).toMatch(/^req_/)
  return eventWhere((event) => event.requestId === requestId, String(requestId))
}

/** The exact bytes the fake upstream puts in its images of this format and size, to compare what a client gets. */
export const fakeImage = async (format: string, bytes: number) =>
  new Uint8Array(await (await fetch(`${inject("fakeUpstreamUrl")}/files/${format}-${bytes}.bin`)).arrayBuffer())

export const decodeBase64 = (base64: string) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))

/**
 * A gateway of its own inside workerd: the Worker's vars with `vars` over them, the real R2 bucket and
 * statistics and key limits Durable Objects (under a name of its own, so no other test's traffic lands in its statistics),
 * and `bindings` over those. `call` answers once the response is ready; `settled` waits for the work the
 * gateway left to `waitUntil` (statistics, stream ends) instead of polling for it.
 */
export const isolatedGateway = (vars: Record<string, string> = {}, bindings: Bindings = {}) => {
  const own = crypto.randomUUID()
  const real = WorkerBindings.fromEnv(env as unknown as Record<string, unknown>)
  const usage = real.usage
  const limits = real.limits
  const ownBindings: Bindings = {
    ...real,
    usage: usage === undefined ? undefined : { getByName: (name: string) => usage.getByName(`${own}/${name}`) },
    limits: limits === undefined ? undefined : { getByName: (name: string) => limits.getByName(`${own}/${name}`) },
    ...bindings
  }
  const config = ConfigProvider.fromUnknown({ ...env, ...vars })
  const app = makeHandler(config, ownBindings)
  const contexts: Array<ExecutionContext> = []
  return {
    call: (path: string, init: RequestInit & { key?: string | null } = {}) => {
      const { key = KEY, ...rest } = init
      const headers = new Headers(rest.headers)
      if (key !== null) headers.set("authorization", `Bearer ${key}`)
      const ctx = createExecutionContext()
      contexts.push(ctx)
      return app.handler(
        new Request(`https://gateway.test${path}`, { ...rest, headers }),
        Context.make(WorkerContext, ctx) as Context.Context<never>
      )
    },
    settled: async () => {
      for (const ctx of contexts.splice(0)) await waitOnExecutionContext(ctx)
    },
    /** This gateway's statistics object, as the Worker reaches it. */
    store: () => usage?.getByName(`${own}/global`),
    scheduled: () => runScheduled(config, ownBindings),
    dispose: app.dispose
  }
}

export const jsonPost = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body)
})
