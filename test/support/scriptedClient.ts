import { Clock, Effect, Layer, Redacted } from "effect"
import { HttpClient, HttpClientError, type HttpClientRequest, HttpClientResponse } from "effect/http"
import type { UpstreamInstance } from "../../src/services/upstreams/ImageUpstream.ts"

export type Step =
  | {
      readonly status: number
      readonly body?: string | Uint8Array | (() => ReadableStream<Uint8Array>)
      readonly headers?: Record<string, string>
    }
  | "network"
  | "hang"

export interface RecordedCall {
  /** The (test) clock when the call was made, so backoff delays can be read off exactly. */
  readonly at: number
  readonly request: HttpClientRequest.HttpClientRequest
  readonly body: unknown
}

/**
 * An HttpClient that answers from a script: a list of steps taken in order (after the last, `otherwise`),
 * or a function of the request for clients that call more than one URL.
 */
export const scripted = (
  steps: ReadonlyArray<Step> | ((request: HttpClientRequest.HttpClientRequest, index: number) => Step),
  otherwise?: Step
) => {
  const calls: Array<RecordedCall> = []
  const client = HttpClient.make((request) =>
    Effect.gen(function* () {
      const body = request.body._tag === "Uint8Array" ? JSON.parse(new TextDecoder().decode(request.body.body)) : undefined
      calls.push({ at: yield* Clock.currentTimeMillis, request, body })
      const index = calls.length - 1
      const step = typeof steps === "function" ? steps(request, index) : (steps[index] ?? otherwise)
      if (step === undefined) throw new Error(`no scripted answer for call ${index + 1}`)
      if (step === "hang") return yield* Effect.never
      if (step === "network") {
        return yield* Effect.fail(
          new HttpClientError.HttpClientError({
            reason: new HttpClientError.TransportError({ request, description: "connection refused" })
          })
        )
      }
      const answer = typeof step.body === "function" ? step.body() : (step.body ?? "")
      return HttpClientResponse.fromWeb(request, new Response(answer, { status: step.status, headers: step.headers ?? {} }))
    })
  )
  return { calls, layer: Layer.succeed(HttpClient.HttpClient, client) }
}

/** An upstream instance's settings for tests: 3 attempts, backoff from 500 ms capped at 10 s, a 60 s timeout. */
export const testInstance = (overrides: Partial<UpstreamInstance> = {}): UpstreamInstance => ({
  id: "test-upstream",
  kind: "test",
  baseUrl: new URL("https://upstream.test/v1/"),
  apiKey: Redacted.make("sk-upstream-secret"),
  headers: {},
  timeoutMs: 60_000,
  maxAttempts: 3,
  backoffMs: 500,
  backoffMaxMs: 10_000,
  maxBytes: 1024 * 1024,
  ...overrides
})

export const PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
export const PNG_BYTES = Uint8Array.from(atob(PNG_BASE64), (c) => c.charCodeAt(0))
