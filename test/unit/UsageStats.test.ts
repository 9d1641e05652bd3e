import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import type { UsageEvent } from "../../src/domain/Usage.ts"
import { UsageStats } from "../../src/services/UsageStats.ts"
import { type Bindings, WorkerBindings } from "../../src/services/WorkerBindings.ts"
import { usageEvent } from "../support/usageEvent.ts"

/** The write-behind buffer in virtual time: a store that blinks, one that never answers, one that is down long. */
const event = (requestId: string): UsageEvent =>
  usageEvent({ requestId, model: "local/preview", upstream: "local", latencyMs: 1 })

const withStore = (store: Record<string, (...args: Array<never>) => Promise<unknown>>) =>
  UsageStats.layer.pipe(
    Layer.provide(WorkerBindings.layer({ usage: { getByName: () => store } as unknown as Bindings["usage"] }))
  )

/** A store that takes every batch, and the request ids of each. */
const recording = () => {
  const batches: Array<ReadonlyArray<string>> = []
  const record = (events: ReadonlyArray<UsageEvent>) => {
    batches.push(events.map((e) => e.requestId))
    return Promise.resolve()
  }
  return { batches, store: { record } }
}

/** The store answers with real promises: let those settle between steps of virtual time. */
const ticks = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 0)))
const advance = (seconds: number) =>
  Effect.gen(function* () {
    for (let second = 0; second < seconds; second++) {
      yield* TestClock.adjust("1 second")
      yield* ticks
    }
  })

describe("usage statistics buffer (virtual time)", () => {
  it.effect("writes the events of one second in one call, after the response", () => {
    const { batches, store } = recording()
    return Effect.gen(function* () {
      const stats = yield* UsageStats
      yield* stats.record(undefined, () => event("a"))
      yield* stats.record(undefined, () => event("b"))
      yield* ticks
      assert.deepStrictEqual(batches, []) // nothing is written on the request's own path
      yield* advance(1)
      assert.deepStrictEqual(batches, [["a", "b"]])
      yield* stats.record(undefined, () => event("c"))
      yield* advance(1)
      assert.deepStrictEqual(batches, [["a", "b"], ["c"]])
    }).pipe(Effect.provide(withStore(store)))
  })

  it.effect("builds a streamed answer's event when its body has ended, with the Clock's time then", () => {
    const seen: Array<UsageEvent> = []
    const store = {
      record: (events: ReadonlyArray<UsageEvent>) => {
        seen.push(...events)
        return Promise.resolve()
      }
    }
    return Effect.gen(function* () {
      const stats = yield* UsageStats
      const started = yield* Clock.currentTimeMillis
      let end = () => {}
      const body = new Promise<void>((resolve) => {
        end = resolve
      })
      yield* stats.record(body, (now) => usageEvent({ requestId: "streamed", latencyMs: now - started }))
      yield* advance(3)
      assert.deepStrictEqual(seen, [])
      end()
      yield* advance(1)
      assert.deepStrictEqual(
        seen.map((e) => [e.requestId, e.latencyMs]),
        [["streamed", 3000]]
      )
    }).pipe(Effect.provide(withStore(store)))
  })

  it.effect("keeps a batch the store refused and sends it with the next flush: a passing failure loses no event", () => {
    const batches: Array<ReadonlyArray<string>> = []
    let failures = 1
    const store = {
      record: (events: ReadonlyArray<UsageEvent>) => {
        if (failures-- > 0) return Promise.reject(new Error("storage blinked"))
        batches.push(events.map((e) => e.requestId))
        return Promise.resolve()
      }
    }
    return Effect.gen(function* () {
      const stats = yield* UsageStats
      yield* stats.record(undefined, () => event("a"))
      yield* advance(2)
      assert.deepStrictEqual(batches, [])
      yield* stats.record(undefined, () => event("b"))
      yield* advance(2)
      assert.deepStrictEqual(batches, [["a", "b"]])
    }).pipe(Effect.provide(withStore(store)))
  })

  it.effect("a store that never answers costs no request, and the reads fail after 10 s saying so", () => {
    const never = () => new Promise<never>(() => {})
    const store = { record: never, summary: never, recent: never, upstreams: never }
    return Effect.gen(function* () {
      const stats = yield* UsageStats
      yield* stats.record(undefined, () => event("a")) // returns at once: the write is in the background
      const summary = yield* Effect.forkChild(Effect.result(stats.summary("1h")))
      yield* TestClock.adjust("9 seconds")
      assert.isUndefined(summary.pollUnsafe())
      yield* TestClock.adjust("1 second")
      const result = yield* Fiber.join(summary)
      assert.strictEqual(result._tag, "Failure")
      assert.include(result._tag === "Failure" ? result.failure.message : "", "within 10 s")
    }).pipe(Effect.provide(withStore(store)))
  })

  it.effect("while the store is down, keeps the newest 5,000 events and drops the oldest", () => {
    const batches: Array<ReadonlyArray<string>> = []
    let down = true
    const store = {
      record: (events: ReadonlyArray<UsageEvent>) => {
        if (down) return Promise.reject(new Error("down"))
        batches.push(events.map((e) => e.requestId))
        return Promise.resolve()
      }
    }
    return Effect.gen(function* () {
      const stats = yield* UsageStats
      for (let i = 0; i < 5_010; i++) yield* stats.record(undefined, () => event(`e${i}`))
      yield* advance(2)
      down = false
      yield* stats.record(undefined, () => event("last"))
      yield* advance(2)
      const sent = batches.flat()
      assert.strictEqual(sent.length, 5_000)
      assert.strictEqual(sent[0], "e11")
      assert.strictEqual(sent.at(-1), "last")
    }).pipe(Effect.provide(withStore(store)))
  })

  it.effect("a streamed answer's event waits for the stream's end", () => {
    const { batches, store } = recording()
    let end: (value?: unknown) => void = () => {}
    const ended = new Promise((resolve) => (end = resolve))
    return Effect.gen(function* () {
      const stats = yield* UsageStats
      yield* stats.record(ended, () => event("stream"))
      yield* advance(3)
      assert.deepStrictEqual(batches, [])
      end()
      yield* ticks
      yield* advance(1)
      assert.deepStrictEqual(batches, [["stream"]])
    }).pipe(Effect.provide(withStore(store)))
  })
})
