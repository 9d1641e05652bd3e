import { Effect, Layer, Redacted } from "effect"
import { GatewayConfig } from "../services/GatewayConfig.ts"
import { ServerMisconfigured, Unauthorized } from "./ApiErrors.ts"
import { Authorization } from "./Middleware.ts"

const encoder = new TextEncoder()
const digest = async (text: string) => new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)))

/**
 * Compares fixed-length digests without an early exit, and checks every
 * configured key, so the time taken says nothing about how much of a key matched.
 */
export const keyMatches = async (presented: string, keys: ReadonlyArray<Redacted.Redacted<string>>): Promise<boolean> => {
  const given = await digest(presented)
  let matched = 0
  for (const key of keys) {
    const expected = await digest(Redacted.value(key))
    let difference = 0
    for (let i = 0; i < expected.length; i++) difference |= (expected[i] ?? 0) ^ (given[i] ?? 0)
    matched |= difference === 0 ? 1 : 0
  }
  return matched === 1
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
    return Authorization.of({
      bearer: Effect.fn("Authorization.bearer")(function* (httpEffect, { credential }) {
        if (apiKeys.length === 0) return yield* noKeysConfigured
        const presented = Redacted.value(credential).trim()
        if (presented === "") return yield* missingKey
        const ok = yield* Effect.promise(() => keyMatches(presented, apiKeys))
        if (!ok) return yield* wrongKey
        return yield* httpEffect
      })
    })
  })
)
