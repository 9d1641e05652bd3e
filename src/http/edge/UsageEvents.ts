import type * as HttpServerRequest from "effect/http/HttpServerRequest"
import type * as HttpServerResponse from "effect/http/HttpServerResponse"
import type { UpstreamError } from "../../domain/Errors.ts"
import type { UsageEndpoint, UsageEvent } from "../../domain/Usage.ts"
import type { UsageNotes } from "../../services/RequestUsage.ts"
import { upstreamOutcome } from "../ErrorMapping.ts"

/** Recorded, never sent: nginx's 499 for a client that closed the connection before the answer was complete. */
export const CLIENT_CLOSED = { status: 499, code: "client_closed_request" }

/** The status and error code recorded for a request whose upstream failure was reported in-band. */
const recordedOutcome = (failure: UpstreamError) => {
  const { status, body } = upstreamOutcome(failure)
  return { status, code: body.error.code }
}

export interface Recorded {
  readonly request: HttpServerRequest.HttpServerRequest
  readonly path: string
  readonly endpoint: UsageEndpoint
  readonly requestId: string
  readonly started: number
}

/** A request's usage event, built when it is complete (`now`): at once, or when a streamed body ends. */
export const usageEvent = (
  recorded: Recorded,
  response: HttpServerResponse.HttpServerResponse,
  notes: UsageNotes,
  logPrompts: boolean,
  now: number
): UsageEvent => {
  // A stream (or a probe) answers 200 before or regardless of its images; when all failed, record the error it reported.
  const failedInBand = response.status < 400 && notes.images === 0 ? notes.failure : undefined
  const outcome = notes.clientClosed ? CLIENT_CLOSED : failedInBand === undefined ? undefined : recordedOutcome(failedInBand)
  const status = outcome?.status ?? response.status
  // Noted where the error was made (the middlewares, the handlers' error mapping, the edge); an error answer
  // that nothing noted (one the framework made itself) is kept by its status.
  const error = outcome?.code ?? (status >= 400 ? (notes.error ?? `http_${status}`) : null)
  return {
    ts: recorded.started,
    requestId: recorded.requestId,
    method: recorded.request.method,
    path: recorded.path,
    // A request without a valid key is counted apart from the endpoint it aimed at.
    endpoint: status === 401 ? "unauthorized" : recorded.endpoint,
    key: notes.key,
    model: notes.model,
    upstream: notes.upstream,
    status,
    latencyMs: now - recorded.started,
    attempts: notes.attempts,
    images: notes.images,
    failedImages: notes.failedImages,
    error,
    stream: notes.stream,
    prompt: logPrompts ? notes.prompt : null,
    failovers: notes.failovers
  }
}
