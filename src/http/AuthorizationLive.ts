import { Buffer } from "node:buffer"
import { timingSafeEqual } from "node:crypto"
import * as Effect from "effect/Effect"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type { CallerKey } from "../domain/ApiKey.ts"
import { CurrentKey } from "../services/CurrentKey.ts"
import {
  apiKeyCaller,
  DEVELOPMENT_API_KEY,
  DEVELOPMENT_CALLER,
  GatewayConfig,
  type GatewaySettings
} from "../services/GatewayConfig.ts"
import { noteUsage } from "../services/RequestUsage.ts"
import { Forbidden, recordedErrorOf, ServerMisconfigured, Unauthorized } from "./ApiErrors.ts"
import { AdminOnly, Authorization } from "./Middleware.ts"

const encoder = new TextEncoder()

const noteError = (error: unknown) =>
  noteUsage((notes) => {
    notes.error = recordedErrorOf(error) ?? notes.error
  })

/**
 * Finds the configured key equal to the presented one, comparing with every key by `timingSafeEqual`, so
 * the time taken says nothing about how much of a key matched or which one did. A presented key of
 * another length is compared with the configured key itself, then rejected: the work depends only on the
 * configured keys, never on the presented one. Returns the index of the match, or -1. (Hashing both sides
 * first cost about 0.1 ms per request in workerd, where `createHash` builds a Node stream: only keys
 * configured by their hash are compared that way.)
 */
export const keyIndexMatcher =
  (keys: ReadonlyArray<Uint8Array>) =>
  (given: Uint8Array): number => {
    let matched = -1
    for (const [index, candidate] of keys.entries()) {
      const sameLength = candidate.byteLength === given.byteLength
      const equal = timingSafeEqual(candidate, sameLength ? given : candidate) && sameLength
      matched = equal ? index : matched
    }
    return matched
  }

export const keyMatcher = (keys: ReadonlyArray<Redacted.Redacted<string>>) => {
  const match = keyIndexMatcher(keys.map((key) => encoder.encode(Redacted.value(key))))
  return (presented: string): boolean => match(encoder.encode(presented)) !== -1
}

/** Every key the gateway accepts, as callers: API_KEYS (unlimited admin keys) first, then KEYS. */
export const callers = (settings: Pick<GatewaySettings, "apiKeys" | "keys">) => {
  const plain: Array<{ readonly key: Uint8Array; readonly caller: CallerKey }> = settings.apiKeys.map((key, i) => ({
    key: encoder.encode(Redacted.value(key)),
    caller: apiKeyCaller(i)
  }))
  const hashed: Array<{ readonly key: Uint8Array; readonly caller: CallerKey }> = []
  for (const { key, sha256, ...caller } of settings.keys) {
    if (key !== undefined) plain.push({ key: encoder.encode(Redacted.value(key)), caller })
    else if (sha256 !== undefined) hashed.push({ key: Buffer.from(sha256, "hex"), caller })
  }
  return { plain, hashed }
}

const missingKey = new Unauthorized({
  message:
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
  param: null,
  code: null
})

const wrongKey = new Unauthorized({
  message: "Incorrect API key provided. Use one of the keys set in this gateway's API_KEYS or KEYS secret.",
  param: null,
  code: "invalid_api_key"
})

const noKeysConfigured = new ServerMisconfigured({
  message:
    "This gateway has no API keys configured, so it refuses every request. The operator must set them: `wrangler secret put API_KEYS` (comma-separated keys) or `wrangler secret put KEYS` (named keys).",
  param: null,
  code: "api_keys_not_configured"
})

const developmentKeyOnly = new Unauthorized({
  message: `Incorrect API key provided. This gateway runs in development mode without API_KEYS: it accepts the development key (${DEVELOPMENT_API_KEY}), only on localhost, and the keys of KEYS if any.`,
  param: null,
  code: "invalid_api_key"
})

const developmentKeyRemote = new Unauthorized({
  message:
    "The development key is accepted only on a loopback host (localhost, 127.0.0.1, [::1]). A deployed gateway needs API_KEYS: `wrangler secret put API_KEYS`.",
  param: null,
  code: "invalid_api_key"
})

/**
 * The host the request was addressed to: on Workers, the web Request's own URL, which is always absolute.
 * URL writes the hostname in one form: lower case, `127.0.0.1` for `127.1` or `2130706433`, `[::1]` bracketed.
 */
const hostOf = (request: HttpServerRequest.HttpServerRequest): string => new URL((request.source as Request).url).hostname

/** `localhost`, `*.localhost`, 127.0.0.0/8 and [::1], as URL writes them: what `npm start` (wrangler dev) is reached on. */
export const isLoopbackHost = (hostname: string): boolean =>
  hostname === "localhost" || hostname.endsWith(".localhost") || hostname === "[::1]" || /^127(?:\.\d{1,3}){3}$/.test(hostname)

export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.gen(function* () {
    const settings = yield* GatewayConfig
    const { developmentKey } = settings
    const { plain, hashed } = callers(settings)
    const matchPlain = keyIndexMatcher(plain.map((entry) => entry.key))
    const matchHashed = keyIndexMatcher(hashed.map((entry) => entry.key))
    const matchesDevelopmentKey = keyMatcher([Redacted.make(DEVELOPMENT_API_KEY)])
    const identify = Effect.fnUntraced(function* (credential: Redacted.Redacted<string>) {
      if (plain.length === 0 && hashed.length === 0 && !developmentKey) return yield* noKeysConfigured
      const presented = Redacted.value(credential).trim()
      if (presented === "") return yield* missingKey
      const given = encoder.encode(presented)
      const index = matchPlain(given)
      if (index !== -1) return plain[index]!.caller
      if (hashed.length > 0) {
        const digest = new Uint8Array(yield* Effect.promise(() => crypto.subtle.digest("SHA-256", given)))
        const byHash = matchHashed(digest)
        if (byHash !== -1) return hashed[byHash]!.caller
      }
      if (developmentKey) {
        if (!matchesDevelopmentKey(presented)) return yield* developmentKeyOnly
        if (!isLoopbackHost(hostOf(yield* HttpServerRequest.HttpServerRequest))) return yield* developmentKeyRemote
        return DEVELOPMENT_CALLER
      }
      return yield* wrongKey
    })
    return Authorization.of({
      // A refused key is noted for the usage record here; the handlers note their own errors (`failWith`).
      // The key's name (never the key) goes on the usage record, and the key to the endpoint as `CurrentKey`.
      bearer: (httpEffect, { credential }) =>
        identify(credential).pipe(
          Effect.tapError(noteError),
          Effect.tap((caller) =>
            noteUsage((notes) => {
              notes.key = caller.name
            })
          ),
          Effect.flatMap((caller) => Effect.provideService(httpEffect, CurrentKey, caller))
        )
    })
  })
)

const adminsOnly = new Forbidden({
  message:
    "This key may call the image endpoints only: /v1/gateway/* (status, statistics, requests, probe, keys) needs a key whose role is admin.",
  param: null,
  code: "permission_denied"
})

/** The gateway's own endpoints: admin keys only. Runs after `Authorization`, which provides the key. */
export const AdminOnlyLive = Layer.succeed(
  AdminOnly,
  AdminOnly.of((httpEffect) =>
    Effect.gen(function* () {
      const key = yield* CurrentKey
      if (key.role === "admin") return yield* httpEffect
      yield* noteError(adminsOnly)
      return yield* adminsOnly
    })
  )
)
