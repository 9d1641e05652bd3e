import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { CallerKey } from "../domain/ApiKey.ts"

/**
 * The key the current request was made with, provided by the Authorization middleware to every
 * endpoint behind it. Services read it where a key's rights or limits apply: the model registry (its
 * allow-list) and the limits (its rpm and daily images). Code run outside a request has none and is
 * unrestricted, as an API_KEYS key is.
 */
export class CurrentKey extends Context.Service<CurrentKey, CallerKey>()("ai-image-gateway/services/CurrentKey") {}

export const currentKey: Effect.Effect<Option.Option<CallerKey>> = Effect.serviceOption(CurrentKey)
