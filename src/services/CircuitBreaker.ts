import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import { GatewayConfig } from "./GatewayConfig.ts"

/** One upstream instance's circuit. `HalfOpen`: the cooldown has passed and one trial call is under way. */
type Circuit =
  | { readonly _tag: "Closed"; readonly failures: number }
  | { readonly _tag: "Open"; readonly until: number }
  | { readonly _tag: "HalfOpen" }

const CLOSED: Circuit = { _tag: "Closed", failures: 0 }

/** While a trial call is under way, other calls wait this long before they look again. */
const TRIAL_RETRY_MS = 1000

export type Admission =
  | { readonly _tag: "Allowed"; readonly trial: boolean }
  | { readonly _tag: "Rejected"; readonly retryAfterMs: number }

export interface CircuitState {
  readonly state: "closed" | "open" | "half-open"
  readonly failures: number
  /** While open: how long until a trial call is let through. */
  readonly retryAfterMs: number | null
}

/**
 * A circuit breaker per upstream instance, per isolate (each Workers isolate keeps its own; they
 * share nothing, so a failing upstream costs each isolate `CIRCUIT_FAILURES` calls before it stops
 * calling it). After that many consecutive failed generations the circuit opens for
 * `CIRCUIT_COOLDOWN_MS`: no calls at all. Then one trial call goes through (half-open): success
 * closes the circuit, failure opens it again.
 */
export class CircuitBreaker extends Context.Service<
  CircuitBreaker,
  {
    admit(upstream: string): Effect.Effect<Admission>
    /** The upstream answered (an image, or a rejection of the request itself): it works. */
    succeeded(upstream: string): Effect.Effect<void>
    failed(upstream: string): Effect.Effect<void>
    /** A trial call that ended without an outcome (the client went away): the next call may try again. */
    abandoned(upstream: string): Effect.Effect<void>
    state(upstream: string): Effect.Effect<CircuitState>
  }
>()("ai-image-gateway/services/CircuitBreaker") {
  static readonly layer = Layer.effect(
    CircuitBreaker,
    Effect.gen(function* () {
      const { circuitFailures, circuitCooldownMs } = yield* GatewayConfig
      const circuits = yield* Ref.make(new Map<string, Circuit>())
      const update = (upstream: string, next: (circuit: Circuit) => Circuit) =>
        Ref.update(circuits, (all) => {
          const current = all.get(upstream) ?? CLOSED
          const updated = next(current)
          // The common case, a success on a closed circuit, changes nothing and copies nothing.
          return updated === current ? all : new Map(all).set(upstream, updated)
        })

      // A closed circuit (almost every call) is decided without reading the clock or touching the map.
      const allowed = Effect.succeed<Admission>({ _tag: "Allowed", trial: false })
      const admit = (upstream: string) =>
        Effect.flatMap(Ref.get(circuits), (all) => {
          const circuit = all.get(upstream)
          return circuit === undefined || circuit._tag === "Closed" ? allowed : admitOpen(upstream)
        })
      const admitOpen = (upstream: string) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Ref.modify(circuits, (all): [Admission, Map<string, Circuit>] => {
            const circuit = all.get(upstream) ?? CLOSED
            switch (circuit._tag) {
              case "Closed":
                return [{ _tag: "Allowed", trial: false }, all]
              case "HalfOpen":
                return [{ _tag: "Rejected", retryAfterMs: TRIAL_RETRY_MS }, all]
              case "Open":
                if (now < circuit.until) return [{ _tag: "Rejected", retryAfterMs: circuit.until - now }, all]
                return [{ _tag: "Allowed", trial: true }, new Map(all).set(upstream, { _tag: "HalfOpen" })]
            }
          })
        )

      const failed = (upstream: string) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          update(upstream, (circuit): Circuit => {
            const opened: Circuit = { _tag: "Open", until: now + circuitCooldownMs }
            if (circuit._tag !== "Closed") return opened
            return circuit.failures + 1 >= circuitFailures ? opened : { _tag: "Closed", failures: circuit.failures + 1 }
          })
        )

      const state = (upstream: string) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.map(Ref.get(circuits), (all): CircuitState => {
            const circuit = all.get(upstream) ?? CLOSED
            switch (circuit._tag) {
              case "Closed":
                return { state: "closed", failures: circuit.failures, retryAfterMs: null }
              case "HalfOpen":
                return { state: "half-open", failures: circuitFailures, retryAfterMs: null }
              case "Open":
                return now < circuit.until
                  ? { state: "open", failures: circuitFailures, retryAfterMs: circuit.until - now }
                  : { state: "half-open", failures: circuitFailures, retryAfterMs: 0 }
            }
          })
        )

      return CircuitBreaker.of({
        admit,
        succeeded: (upstream) =>
          Effect.flatMap(Ref.get(circuits), (all) =>
            (all.get(upstream) ?? CLOSED) === CLOSED ? Effect.void : update(upstream, () => CLOSED)
          ),
        failed,
        abandoned: (upstream) =>
          update(upstream, (circuit) => (circuit._tag === "HalfOpen" ? { _tag: "Open", until: 0 } : circuit)),
        state
      })
    })
  )
}
