import { assert, describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer, Logger } from "effect"
import { TestClock } from "effect/testing"
import type { UsageStoreUnavailable } from "../../src/domain/Errors.ts"
import type { UsageEvent } from "../../src/domain/Usage.ts"
import { UsageStats } from "../../src/services/UsageStats.ts"
import { type Bindings, WorkerBindings } from "../../src/services/WorkerBindings.ts"
import { WorkerContext } from "../../src/services/WorkerContext.ts"
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

/** A real time for the tests that compare times, not the TestClock's epoch. */
const NOW = Date.UTC(2026, 11, 1, 12)

/** The store answers with real promises: let those settle between steps of virtual time. */
const ticks = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 0)))
const advance = (seconds: number) =>
  Effect.gen(function* () {
    for (let second = 0; second < seconds; second++) {
      yield* TestClock.adjust("1 second")
      yield* ticks
    }
  })

/**
 * A store whose calls wait for the test to answer them, one by one: what arrives while a batch is in flight,
 * and what a refusal keeps, can then be seen.
 */
const answeredByHand = () => {
  const written: Array<string> = []
  const calls: Array<(ok: boolean) => void> = []
  const record = (events: ReadonlyArray<UsageEvent>) =>
    new Promise<void>((resolve, reject) => {
      calls.push((ok) => {
        if (!ok) return reject(new Error("storage is down"))
        written.push(...events.map((e) => e.requestId))
        resolve()
      })
    })
  /** Answers the oldest unanswered call and lets the flush go on. */
  const answer = (ok: boolean) =>
    Effect.gen(function* () {
      const settle = calls.shift()
      assert.isDefined(settle, "no call is waiting for an answer")
      settle?.(ok)
      yield* ticks
    })
  return { written, answer, store: { record } }
}

/** The requests' `waitUntil`: how many carried a flush, and whether each has ended. */
const requestContexts = () => {
  const flushes: Array<{ ended: boolean }> = []
  const context = WorkerContext.of({
    waitUntil: (promise) => {
      const flush = { ended: false }
      flushes.push(flush)
      promise.then(() => (flush.ended = true))
    }
  })
  return { flushes, context }
}

/** The buffer's warnings, as [message, details]. */
const warnings = () => {
  const lines: Array<ReadonlyArray<unknown>> = []
  const layer = Logger.layer([Logger.make((options) => lines.push(options.message as ReadonlyArray<unknown>))])
  return { lines, layer }
}

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

  it.effect("only the request that finds no flush pending carries one in its waitUntil", () => {
    const { batches, store } = recording()
    const { flushes, context } = requestContexts()
    return Effect.gen(function* () {
      yield* TestClock.setTime(NOW)
      const stats = yield* UsageStats
      for (const id of ["a", "b", "c"]) yield* stats.record(undefined, () => event(id))
      assert.strictEqual(flushes.length, 1)
      yield* advance(1)
      assert.deepStrictEqual(batches, [["a", "b", "c"]])
      assert.isTrue(flushes[0]?.ended)
      yield* stats.record(undefined, () => event("d"))
      assert.strictEqual(flushes.length, 2)
    }).pipe(Effect.provideService(WorkerContext, context), Effect.provide(withStore(store)))
  })

  it.effect("a flush that never wakes (its request was torn down) holds off new ones for a minute, no longer", () => {
    const { batches, store } = recording()
    const { flushes, context } = requestContexts()
    return Effect.gen(function* () {
      yield* TestClock.setTime(NOW)
      const stats = yield* UsageStats
      const clock = yield* Clock.Clock
      // The torn-down request's flush: its time goes on, its sleep never ends.
      const torn: Clock.Clock = {
        currentTimeMillisUnsafe: () => clock.currentTimeMillisUnsafe(),
        currentTimeMillis: clock.currentTimeMillis,
        currentTimeNanosUnsafe: () => clock.currentTimeNanosUnsafe(),
        currentTimeNanos: clock.currentTimeNanos,
        monotonicTimeNanosUnsafe: () => clock.monotonicTimeNanosUnsafe(),
        monotonicTimeNanos: clock.monotonicTimeNanos,
        sleep: () => Effect.never
      }
      yield* stats.record(undefined, () => event("a")).pipe(Effect.provideService(Clock.Clock, torn))
      yield* advance(59)
      yield* stats.record(undefined, () => event("b"))
      assert.strictEqual(flushes.length, 1)
      yield* advance(1)
      yield* stats.record(undefined, () => event("c"))
      assert.strictEqual(flushes.length, 2)
      yield* advance(1)
      assert.deepStrictEqual(batches, [["a", "b", "c"]])
    }).pipe(Effect.provideService(WorkerContext, context), Effect.provide(withStore(store)))
  })

  it.effect("sends what arrived while a batch was in flight in the same flush, a second later", () => {
    const { written, answer, store } = answeredByHand()
    const { flushes, context } = requestContexts()
    return Effect.gen(function* () {
      const stats = yield* UsageStats
      yield* stats.record(undefined, () => event("a"))
      yield* advance(1) // the batch [a] is in flight
      yield* stats.record(undefined, () => event("b"))
      yield* answer(true)
      yield* advance(1)
      yield* answer(true)
      assert.deepStrictEqual(written, ["a", "b"])
      assert.strictEqual(flushes.length, 1)
      assert.isTrue(flushes[0]?.ended)
    }).pipe(Effect.provideService(WorkerContext, context), Effect.provide(withStore(store)))
  })

  it.effect("under steady traffic a flush ends after 20 s, and the next request starts the next one", () => {
    const { written, answer, store } = answeredByHand()
    const { flushes, context } = requestContexts()
    return Effect.gen(function* () {
      const stats = yield* UsageStats
      yield* stats.record(undefined, () => event("e0"))
      for (let second = 1; second <= 30; second++) {
        yield* advance(1) // a flush that is running takes the buffer and calls the store
        yield* stats.record(undefined, () => event(`e${second}`))
        if (second !== 21) yield* answer(true) // at 21 s no flush is running: e20 waited for e21's request
        if (second === 19) assert.isFalse(flushes[0]?.ended)
        if (second === 20) assert.isTrue(flushes[0]?.ended)
      }
      yield* advance(1)
      yield* answer(true)
      assert.deepStrictEqual(
        written,
        Array.from({ length: 31 }, (_, i) => `e${i}`)
      )
      assert.strictEqual(flushes.length, 2)
    }).pipe(Effect.provideService(WorkerContext, context), Effect.provide(withStore(store)))
  })

  it.effect("while the store is down, keeps the newest 5,000 events, drops the oldest and says how many", () => {
    const { written, answer, store } = answeredByHand()
    const { lines, layer } = warnings()
    return Effect.gen(function* () {
      const stats = yield* UsageStats
      for (let i = 0; i < 5_010; i++) yield* stats.record(undefined, () => event(`e${i}`))
      yield* advance(1)
      // The refused batch goes back in front of what came meanwhile, within the bound: e10 to e19 make room.
      for (let i = 0; i < 10; i++) yield* stats.record(undefined, () => event(`f${i}`))
      yield* answer(false)
      yield* stats.record(undefined, () => event("last")) // the buffer is full again: e20 goes
      yield* advance(1)
      yield* answer(true)
      assert.strictEqual(written.length, 5_000)
      assert.deepStrictEqual([written[0], written.at(-11), written.at(-1)], ["e21", "f0", "last"])
      expect(lines).toEqual([
        [
          "usage events not recorded yet; kept for the next flush",
          { events: 5_000, reason: "The usage statistics store did not answer (record): storage is down" }
        ],
        ["usage events dropped: the buffer was full", { events: 20 }],
        ["usage events dropped: the buffer was full", { events: 1 }]
      ])
    }).pipe(Effect.provide(Layer.merge(withStore(store), layer)))
  })

  it.effect("drops a streamed answer's event when its body has not ended after 10 minutes, and says so", () => {
    const { batches, store } = recording()
    const { lines, layer } = warnings()
    return Effect.gen(function* () {
      const stats = yield* UsageStats
      yield* stats.record(new Promise<never>(() => {}), () => event("endless"))
      yield* TestClock.adjust("10 minutes")
      yield* ticks
      assert.deepStrictEqual(lines, [["usage event dropped: the stream did not end in time"]])
      yield* stats.record(undefined, () => event("next"))
      yield* advance(1)
      assert.deepStrictEqual(batches, [["next"]])
      assert.strictEqual(lines.length, 1) // a flush that dropped nothing says nothing
    }).pipe(Effect.provide(Layer.merge(withStore(store), layer)))
  })

  it.effect("reads the one store named global, passes its answers through, and names the call that failed", () => {
    const names: Array<string> = []
    const answers = { upstreams: [{ upstream: "local" }], prune: { events: 2, rollups: 1 }, recent: [], keys: [] }
    let failing = false
    const reply = (value: unknown) => () => (failing ? Promise.reject(new Error("boom")) : Promise.resolve(value))
    const store = {
      summary: reply({ window: "1h" }),
      recent: reply(answers.recent),
      upstreams: reply(answers.upstreams),
      keys: reply(answers.keys),
      prune: reply(answers.prune)
    }
    const layer = UsageStats.layer.pipe(
      Layer.provide(
        WorkerBindings.layer({
          usage: {
            getByName: (name: string) => {
              names.push(name)
              return store
            }
          } as unknown as Bindings["usage"]
        })
      )
    )
    return Effect.gen(function* () {
      const stats = yield* UsageStats
      assert.deepStrictEqual<unknown>(yield* stats.upstreams, answers.upstreams)
      assert.deepStrictEqual<unknown>(yield* stats.prune, answers.prune)
      assert.deepStrictEqual<unknown>(yield* stats.summary("1h"), { window: "1h" })
      failing = true
      const calls: Record<string, Effect.Effect<unknown, UsageStoreUnavailable>> = {
        summary: stats.summary("1h"),
        recent: stats.recent(5),
        upstreams: stats.upstreams,
        keys: stats.keys("24h"),
        prune: stats.prune
      }
      for (const [name, call] of Object.entries(calls)) {
        const error = yield* Effect.flip(call)
        assert.strictEqual(error.message, `The usage statistics store did not answer (${name}): boom`)
      }
      assert.isTrue(names.length > 0 && names.every((name) => name === "global"))
    }).pipe(Effect.provide(layer))
  })
})
