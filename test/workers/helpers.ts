import { exports } from "cloudflare:workers"
import { expect, inject } from "vitest"
import type { UsageEvent } from "../../src/domain/Usage.ts"

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
): Promise<{ calls: number; aborted: number; peakInFlight: number; requests: Array<Record<string, unknown>> }> => {
  const response = await fetch(`${inject("fakeUpstreamUrl")}/__calls?id=${id}`)
  return (await response.json()) as {
    calls: number
    aborted: number
    peakInFlight: number
    requests: Array<Record<string, unknown>>
  }
}

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

/** The recorded event of the request that answered with `response`, once it is written. */
export const eventOf = async (response: Response): Promise<UsageEvent> => {
  const requestId = response.headers.get("x-request-id")
  expect(requestId).toMatch(/^req_/)
  for (let i = 0; i < 100; i++) {
    const found = (await recent()).find((event) => event.requestId === requestId)
    if (found !== undefined) return found
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`no usage event for ${requestId}`)
}

/** The exact bytes the fake upstream puts in its images of this format and size, to compare what a client gets. */
export const fakeImage = async (format: string, bytes: number) =>
  new Uint8Array(await (await fetch(`${inject("fakeUpstreamUrl")}/files/${format}-${bytes}.bin`)).arrayBuffer())

export const decodeBase64 = (base64: string) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))
