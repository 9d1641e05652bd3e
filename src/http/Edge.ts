import { Cause, Effect } from "effect"
import { HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApi } from "effect/http-api"
import type { UpstreamError } from "../domain/Errors.ts"
import type { UsageEndpoint, UsageEvent } from "../domain/Usage.ts"
import { GatewayConfig } from "../services/GatewayConfig.ts"
import { RequestUsage, type UsageNotes } from "../services/RequestUsage.ts"
import { UsageStats } from "../services/UsageStats.ts"
import { Api } from "./Api.ts"
import { type ErrorBody, errorBody } from "./ApiErrors.ts"
import { upstreamOutcome } from "./ErrorMapping.ts"

/**
 * The one place every request passes: request ids, CORS, body limits, and the
 * OpenAI error shape for what HttpApi never sees (unknown routes, wrong
 * methods, unexpected defects). Logs one line per request.
 */

const routes: Array<{ readonly method: string; readonly pattern: RegExp }> = []
HttpApi.reflect(Api, {
  onGroup: () => {},
  onEndpoint: ({ endpoint }) => {
    const source = endpoint.path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/:[A-Za-z]+/g, "[^/]+")
    routes.push({ method: endpoint.method, pattern: new RegExp(`^${source}/?$`) })
  }
})

/** The methods the API serves at a path, for telling 405 from 404. */
export const allowedMethods = (path: string): ReadonlyArray<string> =>
  routes.filter((route) => route.pattern.test(path)).map((route) => route.method)

const isRouteNotFound = (error: unknown) => HttpServerError.isHttpServerError(error) && error.reason._tag === "RouteNotFound"

export const EXPOSED_HEADERS = ["x-request-id", "x-images-failed", "x-cache", "retry-after", "x-should-retry"].join(", ")

const json = (status: number, body: ErrorBody, headers: Record<string, string> = {}) =>
  HttpServerResponse.jsonUnsafe(body, { status, headers })

const isJsonContentType = (value: string | undefined) =>
  value === undefined || /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(value.trim())

/** `application/json` itself (HttpApi decodes only that); a `+json` type is JSON too, and is passed on as it. */
const isPlainJson = (value: string | undefined) => value === undefined || /^application\/json\s*(?:;|$)/i.test(value.trim())

const pathOf = (url: string) => {
  try {
    return new URL(url, "http://gateway").pathname
  } catch {
    return url
  }
}

const readBounded = async (body: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array | undefined> => {
  const reader = body.getReader()
  const chunks: Array<Uint8Array> = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > limit) {
      await reader.cancel()
      return undefined
    }
    chunks.push(value)
  }
  const joined = new Uint8Array(size)
  let offset = 0
  for (const chunk of chunks) {
    joined.set(chunk, offset)
    offset += chunk.byteLength
  }
  return joined
}

/**
 * Which requests the usage statistics record: the OpenAI API and probes, not
 * the cockpit's own reads, CORS preflights, hosted image downloads or docs.
 */
export const usageEndpoint = (method: string, path: string): UsageEndpoint | undefined => {
  if (method === "OPTIONS" || !path.startsWith("/v1/")) return undefined
  if (path.startsWith("/v1/images/generations")) return "images"
  if (path.startsWith("/v1/chat/completions")) return "chat"
  if (path.startsWith("/v1/models")) return "models"
  if (path.startsWith("/v1/gateway/probe")) return "probe"
  if (path.startsWith("/v1/gateway/")) return undefined
  return "other"
}

const decoder = new TextDecoder()

/** What the pre-check decided: an answer of its own, or the request to hand on (a buffered copy). */
type Precheck =
  | { readonly response: HttpServerResponse.HttpServerResponse }
  | { readonly request: HttpServerRequest.HttpServerRequest }

/** Recorded, never sent: nginx's 499 for a client that closed the connection before the answer was complete. */
const CLIENT_CLOSED = { status: 499, code: "client_closed_request" }

/** The status and error code recorded for a request whose upstream failure was reported in-band. */
const recordedOutcome = (failure: UpstreamError) => {
  const { status, body } = upstreamOutcome(failure)
  return { status, code: body.error.code }
}

/** The `code` (else `type`) of an OpenAI error body; error bodies are small JSON, so reading one is cheap. */
const errorCodeOf = (response: HttpServerResponse.HttpServerResponse): string => {
  const fallback = `http_${response.status}`
  const body = response.body
  const text =
    body._tag === "Uint8Array"
      ? decoder.decode(body.body)
      : body._tag === "Raw" && typeof body.body === "string"
        ? body.body
        : undefined
  if (text === undefined) return fallback
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; type?: unknown } }
    const code = parsed.error?.code ?? parsed.error?.type
    return typeof code === "string" ? code : fallback
  } catch {
    return fallback
  }
}

export const EdgeMiddleware = HttpRouter.middleware(
  Effect.gen(function* () {
    const config = yield* GatewayConfig
    const usage = yield* UsageStats
    const anyOrigin = config.corsOrigins.includes("*")

    const corsHeaders = (origin: string | undefined): Record<string, string> => {
      if (anyOrigin) return { "access-control-allow-origin": "*", "access-control-expose-headers": EXPOSED_HEADERS }
      if (origin === undefined || !config.corsOrigins.includes(origin)) return { vary: "origin" }
      return { "access-control-allow-origin": origin, "access-control-expose-headers": EXPOSED_HEADERS, vary: "origin" }
    }

    const tooLarge = () =>
      json(
        413,
        errorBody(
          "invalid_request_error",
          `The request body is larger than this gateway accepts (${config.maxBodyBytes} bytes).`,
          null,
          "request_too_large"
        )
      )

    /**
     * Rejects what no endpoint accepts before any handler reads the body. A plain function: only a
     * body without Content-Length (chunked) needs an effect, to read it within the limit.
     */
    const precheck = (request: HttpServerRequest.HttpServerRequest): Precheck | Effect.Effect<Precheck> | undefined => {
      if (request.method !== "POST" && request.method !== "PUT" && request.method !== "PATCH") return undefined
      const contentType = request.headers["content-type"]
      if (!isJsonContentType(contentType)) {
        return {
          response: json(
            415,
            errorBody(
              "invalid_request_error",
              `Unsupported Content-Type '${contentType}'. Send the request body as JSON with 'Content-Type: application/json'.`,
              null,
              "unsupported_media_type"
            )
          )
        }
      }
      const length = request.headers["content-length"]
      const source = request.source as Request
      // `application/vnd.api+json` and the like: the same JSON, handed on as `application/json`.
      const asJson = isPlainJson(contentType) ? undefined : new Headers(source.headers)
      asJson?.set("content-type", "application/json")
      if (length !== undefined && Number(length) > config.maxBodyBytes) return { response: tooLarge() }
      if (length !== undefined || source.body === null) {
        return asJson === undefined ? undefined : { request: HttpServerRequest.fromWeb(new Request(source, { headers: asJson })) }
      }
      // No Content-Length (chunked): read at most the limit, then hand the handlers a buffered copy.
      return Effect.tryPromise(() => readBounded(source.body as ReadableStream<Uint8Array>, config.maxBodyBytes)).pipe(
        Effect.map(
          (body): Precheck =>
            body === undefined
              ? { response: tooLarge() }
              : {
                  request: HttpServerRequest.fromWeb(
                    new Request(source, { body, ...(asJson === undefined ? {} : { headers: asJson }) })
                  )
                }
        ),
        // A body that breaks off while it is read: the client's request is incomplete, and says so in OpenAI's shape.
        Effect.catch(() =>
          Effect.succeed<Precheck>({
            response: json(
              400,
              errorBody("invalid_request_error", "The request body could not be read to its end.", null, "invalid_body")
            )
          })
        )
      )
    }

    const fromFailure = (request: HttpServerRequest.HttpServerRequest, cause: Cause.Cause<unknown>) => {
      const failure = Cause.findErrorOption(cause)
      if (failure._tag === "Some" && isRouteNotFound(failure.value)) {
        const path = pathOf(request.url)
        const allowed = allowedMethods(path)
        if (allowed.length > 0) {
          return Effect.succeed(
            json(
              405,
              errorBody(
                "invalid_request_error",
                `Method ${request.method} is not allowed on ${path}. Use ${allowed.join(", ")}.`,
                null,
                "method_not_allowed"
              ),
              { allow: [...allowed, "OPTIONS"].join(", ") }
            )
          )
        }
        return Effect.succeed(
          json(404, errorBody("invalid_request_error", `Unknown request URL: ${request.method} ${path}.`, null, "unknown_url"))
        )
      }
      return Effect.logError("unhandled failure", cause).pipe(
        Effect.as(
          json(
            500,
            errorBody("server_error", "The gateway failed unexpectedly while handling this request.", null, "internal_error"),
            {
              "x-should-retry": "false"
            }
          )
        )
      )
    }

    /** Built when the request is complete: at once, or when a streamed body ends. */
    const usageEvent = (
      request: HttpServerRequest.HttpServerRequest,
      path: string,
      endpoint: UsageEndpoint,
      requestId: string,
      started: number,
      response: HttpServerResponse.HttpServerResponse,
      notes: UsageNotes
    ): UsageEvent => {
      // A stream (or a probe) answers 200 before or regardless of its images; when all failed, record the error it reported.
      const failedInBand = response.status < 400 && notes.images === 0 && notes.failure !== undefined
      const outcome = notes.clientClosed
        ? CLIENT_CLOSED
        : failedInBand && notes.failure !== undefined
          ? recordedOutcome(notes.failure)
          : undefined
      const status = outcome?.status ?? response.status
      const error = outcome?.code ?? (status >= 400 ? errorCodeOf(response) : null)
      return {
        ts: started,
        requestId,
        method: request.method,
        path,
        endpoint:
          status === 401 ? "unauthorized" : error === "unknown_url" || error === "method_not_allowed" ? "unknown" : endpoint,
        model: notes.model,
        upstream: notes.upstream,
        status,
        latencyMs: Date.now() - started,
        attempts: notes.attempts,
        images: notes.images,
        failedImages: notes.failedImages,
        error,
        stream: notes.stream,
        prompt: config.logPrompts ? notes.prompt : null,
        failovers: notes.failovers
      }
    }

    return (httpEffect) =>
      Effect.suspend(() => {
        const requestId = `req_${crypto.randomUUID().replaceAll("-", "")}`
        return handle(httpEffect, requestId).pipe(Effect.annotateLogs({ requestId }))
      })

    function handle<E>(
      httpEffect: Effect.Effect<HttpServerResponse.HttpServerResponse, E, HttpServerRequest.HttpServerRequest>,
      requestId: string
    ): Effect.Effect<HttpServerResponse.HttpServerResponse, E, HttpServerRequest.HttpServerRequest> {
      // Every failure is answered here; E stays in the type only because the router's middleware contract asks for it.
      return Effect.gen(function* () {
        const started = Date.now()
        const original = yield* HttpServerRequest.HttpServerRequest
        const notes = RequestUsage.make()
        const path = pathOf(original.url)
        const endpoint = usageEndpoint(original.method, path)
        const cors = corsHeaders(original.headers.origin)
        let response: HttpServerResponse.HttpServerResponse
        if (original.method === "OPTIONS") {
          response = HttpServerResponse.empty({
            status: 204,
            headers: {
              ...cors,
              "access-control-allow-methods": "GET, POST, OPTIONS",
              "access-control-allow-headers": original.headers["access-control-request-headers"] ?? "authorization, content-type",
              "access-control-max-age": "86400"
            }
          })
        } else {
          const prechecked = precheck(original)
          const checked = Effect.isEffect(prechecked) ? yield* prechecked : prechecked
          if (checked !== undefined && "response" in checked) {
            response = checked.response
          } else {
            const request = checked?.request ?? original
            const handler =
              request === original ? httpEffect : Effect.provideService(httpEffect, HttpServerRequest.HttpServerRequest, request)
            response = yield* handler.pipe(
              Effect.provideService(RequestUsage, notes),
              Effect.catchCause((cause) =>
                // A client that went away: let the runtime end the request as it does.
                Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause as Cause.Cause<never>) : fromFailure(request, cause)
              ),
              Effect.onInterrupt(() => {
                if (endpoint === undefined) return Effect.void
                notes.clientClosed = true
                const closed = HttpServerResponse.empty({ status: CLIENT_CLOSED.status })
                return usage.record(undefined, () => usageEvent(original, path, endpoint, requestId, started, closed, notes))
              })
            )
          }
        }
        yield* Effect.logInfo("request", {
          method: original.method,
          path,
          status: response.status,
          latencyMs: Date.now() - started
        })
        if (endpoint !== undefined) {
          yield* usage.record(notes.settled, () => usageEvent(original, path, endpoint, requestId, started, response, notes))
        }
        return HttpServerResponse.setHeaders(response, { ...cors, "x-request-id": requestId })
      })
    }
  }),
  { global: true }
)
