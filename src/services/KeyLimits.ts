import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type CallerKey, hasLimits } from "../domain/ApiKey.ts"
import { KeyLimitExceeded, LimiterUnavailable } from "../domain/Errors.ts"
import { currentKey } from "./CurrentKey.ts"
import { GatewayConfig } from "./GatewayConfig.ts"
import { noteUsage, type UsageNotes } from "./RequestUsage.ts"
import { type KeyLimitsNamespace, WorkerBindings } from "./WorkerBindings.ts"
import { inBackground } from "./WorkerContext.ts"

/** A limits call that takes longer than this counts as the store not answering. */
const CALL_LIMIT = Duration.seconds(3)
/** A streamed answer's refund waits at most this long for its end (as its usage event does). */
const SETTLE_LIMIT = Duration.minutes(10)

/**
 * The `rpm` and `imagesPerDay` of named keys, counted by one Durable Object per key (`KeyLimitsObject`).
 * A request of a key with limits is admitted (and its `n` images reserved) before any upstream call;
 * when it ends, the images it did not serve are given back. A key without limits never calls the store.
 * A store that does not answer lets the request through (LIMITS_FAIL_OPEN=true, the default) or refuses it,
 * and says so in the log either way.
 */
export class KeyLimits extends Context.Service<
  KeyLimits,
  {
    /** Admits a generation of `images` for the current key, or fails before any upstream call. */
    admit(images: number): Effect.Effect<void, KeyLimitExceeded | LimiterUnavailable>
    /** After the request: gives back the reserved images it did not serve (in the background, once it has ended). */
    settle(notes: UsageNotes): Effect.Effect<void>
    /** Images charged to a key today (UTC); none for a key without a quota or when the store does not answer. */
    today(key: CallerKey): Effect.Effect<Option.Option<number>>
  }
>()("ai-image-gateway/services/KeyLimits") {
  static readonly layer = Layer.effect(
    KeyLimits,
    Effect.gen(function* () {
      const { limitsFailOpen } = yield* GatewayConfig
      const { limits } = yield* WorkerBindings
      return make(limits, limitsFailOpen)
    })
  )
}

const make = (namespace: KeyLimitsNamespace | undefined, failOpen: boolean) => {
  const call = <A>(key: string, what: string, run: (store: ReturnType<KeyLimitsNamespace["getByName"]>) => Promise<A>) =>
    namespace === undefined
      ? Effect.fail(
          new LimiterUnavailable({
            message: `The limits of key '${key}' cannot be checked: this deployment has no KEY_LIMITS Durable Object binding (see wrangler.toml).`
          })
        )
      : Effect.tryPromise({
          try: () => run(namespace.getByName(key)),
          catch: () => new LimiterUnavailable({ message: `The limits store did not answer (${what}) for key '${key}'.` })
        }).pipe(
          Effect.timeoutOrElse({
            duration: CALL_LIMIT,
            orElse: () =>
              Effect.fail(
                new LimiterUnavailable({ message: `The limits store did not answer (${what}) for key '${key}' in time.` })
              )
          })
        )

  const unavailable = (key: CallerKey, error: LimiterUnavailable) =>
    failOpen
      ? Effect.logWarning("limits store unavailable: request let through (LIMITS_FAIL_OPEN=true)", {
          key: key.name,
          reason: error.message
        })
      : Effect.andThen(
          Effect.logError("limits store unavailable: request refused (LIMITS_FAIL_OPEN=false)", {
            key: key.name,
            reason: error.message
          }),
          Effect.fail(
            new LimiterUnavailable({
              message:
                "This key's limits cannot be checked right now, and the gateway refuses requests it cannot count. Try again shortly."
            })
          )
        )

  const admit = Effect.fnUntraced(function* (images: number) {
    const found = yield* currentKey
    if (Option.isNone(found) || !hasLimits(found.value)) return
    const key = found.value
    const request = { rpm: key.rpm ?? null, imagesPerDay: key.imagesPerDay ?? null, images }
    const answer = yield* Effect.result(call(key.name, "admit", (store) => store.admit(request)))
    if (answer._tag === "Failure") return yield* unavailable(key, answer.failure)
    const admission = answer.success
    if (admission.ok) {
      yield* noteUsage((notes) => {
        notes.charge = { key: key.name, day: admission.day, images }
      })
      return
    }
    const now = yield* Clock.currentTimeMillis
    return yield* admission.reason === "rate"
      ? new KeyLimitExceeded({
          reason: "rate",
          key: key.name,
          limit: admission.limit,
          used: admission.limit,
          requested: images,
          retryAfterMs: admission.retryAfterMs,
          resetsAt: now + admission.retryAfterMs
        })
      : new KeyLimitExceeded({
          reason: "quota",
          key: key.name,
          limit: admission.limit,
          used: admission.used,
          requested: images,
          retryAfterMs: admission.resetsAt - now,
          resetsAt: admission.resetsAt
        })
  })

  const refund = (notes: UsageNotes) =>
    Effect.gen(function* () {
      const charge = notes.charge
      if (charge === undefined) return
      if (notes.settled !== undefined) {
        const ended = yield* Effect.promise(() => notes.settled as Promise<void>).pipe(Effect.timeoutOption(SETTLE_LIMIT))
        if (Option.isNone(ended)) return yield* Effect.logWarning("images not refunded: the stream did not end in time")
      }
      const unserved = charge.images - notes.images
      if (unserved <= 0) return
      yield* call(charge.key, "refund", (store) => store.refund(charge.day, unserved)).pipe(
        Effect.catch((error) =>
          Effect.logWarning("unserved images not given back to the key's quota", {
            key: charge.key,
            images: unserved,
            reason: error.message
          })
        )
      )
    })

  return KeyLimits.of({
    admit,
    settle: (notes) => (notes.charge === undefined ? Effect.void : inBackground(refund(notes))),
    today: (key) =>
      key.imagesPerDay === undefined
        ? Effect.succeed(Option.none())
        : call(key.name, "today", (store) => store.today()).pipe(
            Effect.map(Option.some),
            Effect.catch((error) =>
              Effect.as(Effect.logWarning("key quota not read", { key: key.name, reason: error.message }), Option.none())
            )
          )
  })
}
