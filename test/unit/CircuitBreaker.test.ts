import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { CircuitBreaker } from "../../src/services/CircuitBreaker.ts"
import { GatewayConfig } from "../../src/services/GatewayConfig.ts"

/** The breaker alone, on the TestClock: 3 failures open a circuit for 30 s. */
const breaker = CircuitBreaker.layer.pipe(
  Layer.provide(GatewayConfig.layerTest({ circuitFailures: 3, circuitCooldownMs: 30_000 }))
)

describe("CircuitBreaker", () => {
  it.effect("counts failures while closed; a success starts the count again", () =>
    Effect.gen(function* () {
      const circuits = yield* CircuitBreaker
      assert.deepStrictEqual(yield* circuits.state("a"), { state: "closed", failures: 0, retryAfterMs: null })
      yield* circuits.failed("a")
      yield* circuits.failed("a")
      assert.deepStrictEqual(yield* circuits.state("a"), { state: "closed", failures: 2, retryAfterMs: null })
      assert.deepStrictEqual(yield* circuits.admit("a"), { _tag: "Allowed", trial: false })
      yield* circuits.succeeded("a")
      assert.deepStrictEqual(yield* circuits.state("a"), { state: "closed", failures: 0, retryAfterMs: null })
      yield* circuits.failed("a")
      yield* circuits.failed("a")
      assert.strictEqual((yield* circuits.state("a")).state, "closed", "two failures after the success, not four")
    }).pipe(Effect.provide(breaker))
  )

  it.effect("opens at the threshold for the cooldown, counted down on the clock; other upstreams are not touched", () =>
    Effect.gen(function* () {
      const circuits = yield* CircuitBreaker
      for (let i = 0; i < 3; i++) yield* circuits.failed("a")
      assert.deepStrictEqual(yield* circuits.state("a"), { state: "open", failures: 3, retryAfterMs: 30_000 })
      assert.deepStrictEqual(yield* circuits.admit("a"), { _tag: "Rejected", retryAfterMs: 30_000 })
      yield* TestClock.adjust(29_999)
      assert.deepStrictEqual(yield* circuits.admit("a"), { _tag: "Rejected", retryAfterMs: 1 })
      assert.deepStrictEqual(yield* circuits.state("a"), { state: "open", failures: 3, retryAfterMs: 1 })
      assert.deepStrictEqual(yield* circuits.admit("b"), { _tag: "Allowed", trial: false })
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(yield* circuits.state("a"), { state: "half-open", failures: 3, retryAfterMs: 0 })
    }).pipe(Effect.provide(breaker))
  )

  it.effect("after the cooldown, one trial call; others wait; the trial's outcome closes or reopens", () =>
    Effect.gen(function* () {
      const circuits = yield* CircuitBreaker
      for (let i = 0; i < 3; i++) yield* circuits.failed("a")
      yield* TestClock.adjust(30_000)
      assert.deepStrictEqual(yield* circuits.admit("a"), { _tag: "Allowed", trial: true })
      assert.deepStrictEqual(yield* circuits.admit("a"), { _tag: "Rejected", retryAfterMs: 1000 })
      assert.deepStrictEqual(yield* circuits.state("a"), { state: "half-open", failures: 3, retryAfterMs: null })
      yield* circuits.failed("a")
      assert.deepStrictEqual(yield* circuits.state("a"), { state: "open", failures: 3, retryAfterMs: 30_000 })
      yield* TestClock.adjust(30_000)
      assert.deepStrictEqual(yield* circuits.admit("a"), { _tag: "Allowed", trial: true })
      yield* circuits.succeeded("a")
      assert.deepStrictEqual(yield* circuits.state("a"), { state: "closed", failures: 0, retryAfterMs: null })
      assert.deepStrictEqual(yield* circuits.admit("a"), { _tag: "Allowed", trial: false })
    }).pipe(Effect.provide(breaker))
  )

  it.effect("a trial that ends without an outcome lets the next call try at once; abandoning a closed circuit does nothing", () =>
    Effect.gen(function* () {
      const circuits = yield* CircuitBreaker
      yield* circuits.failed("b")
      yield* circuits.abandoned("b")
      assert.deepStrictEqual(yield* circuits.state("b"), { state: "closed", failures: 1, retryAfterMs: null })
      for (let i = 0; i < 3; i++) yield* circuits.failed("a")
      yield* TestClock.adjust(30_000)
      assert.deepStrictEqual(yield* circuits.admit("a"), { _tag: "Allowed", trial: true })
      yield* circuits.abandoned("a")
      assert.deepStrictEqual(yield* circuits.admit("a"), { _tag: "Allowed", trial: true })
    }).pipe(Effect.provide(breaker))
  )
})
