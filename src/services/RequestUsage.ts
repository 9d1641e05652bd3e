import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { UpstreamError } from "../domain/Errors.ts"

/**
 * What one request did, noted by the services that did it and read by the
 * edge when it records the request's usage event. Provided per request by
 * the edge; code run outside a request (tests of a service) has none, and
 * `noteUsage` then does nothing.
 */
export interface UsageNotes {
  /** The name of the key the request was made with (never the key). */
  key: string | null
  model: string | null
  upstream: string | null
  attempts: number
  /** How many times a call moved on to a fallback model. */
  failovers: number
  images: number
  failedImages: number
  prompt: string | null
  stream: boolean
  /** The first failure, so a stream whose images all failed is recorded as the error it reported. */
  failure: UpstreamError | undefined
  /** For a streamed answer: resolves when its body has ended, the moment the request is complete. */
  settled: Promise<void> | undefined
  /** The client went away before the answer was complete. */
  clientClosed: boolean
  /** The `code` (else `type`) of the error the answer carried, noted where that error was made. */
  error: string | undefined
  /** Images reserved from a key's daily quota; what was not served is given back when the request ends. */
  charge: { readonly key: string; readonly day: number; readonly images: number } | undefined
}

export class RequestUsage extends Context.Service<RequestUsage, UsageNotes>()("ai-image-gateway/services/RequestUsage") {
  static readonly make = (): UsageNotes => ({
    key: null,
    model: null,
    upstream: null,
    attempts: 0,
    failovers: 0,
    images: 0,
    failedImages: 0,
    prompt: null,
    stream: false,
    failure: undefined,
    settled: undefined,
    clientClosed: false,
    error: undefined,
    charge: undefined
  })
}

export const noteUsage = (update: (notes: UsageNotes) => void): Effect.Effect<void> =>
  Effect.map(Effect.serviceOption(RequestUsage), Option.map(update))

/**
 * Notes an answer whose body is written as it is made, and returns the callback that marks its end.
 * `streamed`: the client asked for `stream: true` (a non-streamed answer can be written as it goes too).
 */
export const noteStream = (notes: UsageNotes, streamed = true): (() => void) => {
  let settle: () => void = () => {}
  notes.stream = streamed
  notes.settled = new Promise<void>((resolve) => {
    settle = resolve
  })
  return settle
}
