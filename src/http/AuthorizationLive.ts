import { timingSafeEqual } from "node:crypto"
import { Effect, Layer, Redacted } from "effect"
import { HttpServerRequest } from "effect/http"
import { DEVELOPMENT_API_KEY, GatewayConfig } from "../services/GatewayConfig.ts"
import { noteUsage } from "../services/RequestUsage.ts"
import { recordedErrorOf, ServerMisconfigured, Unauthorized } from "./ApiErrors.ts"
import { Authorization } from "./Middleware.ts"

const encoder = new TextEncoder()

const noteError = (error: unknown) =>
  noteUsage((notes) => {
    notes.error = recordedErrorOf(error) ?? notes.error
  })

/**
 * Checks every configured key with `timingSafeEqual`, so the time taken says
 * nothing about how much of a key matched. A presented key of another length
 * is compared with the configured key itself, then rejected: the work depends
 * only on the configured keys, never on the presented one. (Hashing both sides
 * first, as this did before, cost about 0.1 ms per request in workerd, where
 * `createHash` builds a Node stream.)
 */
export const keyMatcher = (keys: ReadonlyArray<Redacted.Redacted<string>>) => {
  const expected = keys.map((key) => encoder.encode(Redacted.value(key)))
  return (presented: string): boolean => {
    const given = encoder.encode(presented)
    let matched = false
    for (const candidate of expected) {
      const sameLength = candidate.byteLength === given.byteLength
      matched = (timingSafeEqual(candidate, sameLength ? given : candidate) && sameLength) || matched
    }
    return matched
  }
}

const missingKey = new Unauthorized({
  message:
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
  param: null,
  code: null
})

const wrongKey = new Unauthorized({
  message: "Incorrect API key provided. Use one of the keys set in this gateway's API_KEYS secret.",
  param: null,
  code: "invalid_api_key"
})

const noKeysConfigured = new ServerMisconfigured({
  message:
    "This gateway has no API keys configured, so it refuses every request. The operator must set them: `wrangler secret put API_KEYS` (comma-separated keys).",
  param: null,
  code: "api_keys_not_configured"
})

const developmentKeyOnly = new Unauthorized({
  message: `Incorrect API key provided. This gateway runs in development mode without API_KEYS: it accepts only the development key (${DEVELOPMENT_API_KEY}), and only on localhost.`,
  param: null,
  code: "invalid_api_key"
})

const developmentKeyRemote = new Unauthorized({
  message:
    "The development key is accepted only on a loopback host (localhost, 127.0.0.1, [::1]). A deployed gateway needs API_KEYS: `wrangler secret put API_KEYS`.",
  param: null,
  code: "invalid_api_key"
})

/** The host the request was addressed to: on Workers, the web Request's own URL. */
const hostOf = (request: HttpServerRequest.HttpServerRequest): string => {
  try {
    return new URL(
      request.source instanceof Request ? request.source.url : request.url,
      `http://${request.headers.host ?? "unknown"}`
    ).hostname
  } catch {
    return ""
  }
}

/** `localhost`, `*.localhost`, 127.0.0.0/8 and [::1]: what `npm start` (wrangler dev) is reached on. */
export const isLoopbackHost = (hostname: string): boolean =>
  hostname === "localhost" ||
  hostname.endsWith(".localhost") ||
  hostname === "[::1]" ||
  hostname === "::1" ||
  /^127(?:\.\d{1,3}){3}$/.test(hostname)

export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.gen(function* () {
    const { apiKeys, developmentKey } = yield* GatewayConfig
    const keyMatches = keyMatcher(apiKeys)
    const matchesDevelopmentKey = keyMatcher([Redacted.make(DEVELOPMENT_API_KEY)])
    const check = Effect.fnUntraced(function* (credential: Redacted.Redacted<string>) {
      if (apiKeys.length === 0 && !developmentKey) return yield* noKeysConfigured
      const presented = Redacted.value(credential).trim()
      if (presented === "") return yield* missingKey
      if (developmentKey) {
        if (!matchesDevelopmentKey(presented)) return yield* developmentKeyOnly
        if (!isLoopbackHost(hostOf(yield* HttpServerRequest.HttpServerRequest))) return yield* developmentKeyRemote
        return
      }
      if (!keyMatches(presented)) return yield* wrongKey
    })
    return Authorization.of({
      // A refused key is noted for the usage record here; the handlers note their own errors (`failWith`).
      bearer: (httpEffect, { credential }) => check(credential).pipe(Effect.tapError(noteError), Effect.andThen(httpEffect))
    })
  })
)
