import { timingSafeEqual } from "node:crypto"
import { Effect, Layer, Redacted } from "effect"
import { GatewayConfig } from "../services/GatewayConfig.ts"
import { ServerMisconfigured, Unauthorized } from "./ApiErrors.ts"
import { Authorization } from "./Middleware.ts"

const encoder = new TextEncoder()

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

export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.gen(function* () {
    const { apiKeys } = yield* GatewayConfig
    const keyMatches = keyMatcher(apiKeys)
    return Authorization.of({
      bearer: Effect.fnUntraced(function* (httpEffect, { credential }) {
        if (apiKeys.length === 0) return yield* noKeysConfigured
        const presented = Redacted.value(credential).trim()
        if (presented === "") return yield* missingKey
        if (!keyMatches(presented)) return yield* wrongKey
        return yield* httpEffect
      })
    })
  })
)
