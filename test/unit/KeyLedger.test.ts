import { describe, expect, it } from "vitest"
import { DAY_MS, MINUTE_MS } from "../../src/domain/ApiKey.ts"
import { KeyLedger } from "../../src/durable/KeyLedger.ts"
import { nodeSql } from "../support/nodeStores.ts"

/** The limits of one key on Node's own SQLite, with the times given explicitly. */
const ledger = () => new KeyLedger(nodeSql())
const T0 = Date.UTC(2026, 10, 30, 12, 0, 0)

describe("KeyLedger", () => {
  it("rpm: a sliding minute; the answer says when the next request fits", () => {
    const limits = ledger()
    const rpm = { rpm: 3, imagesPerDay: null, images: 1 }
    expect(limits.admit(rpm, T0).ok).toBe(true)
    expect(limits.admit(rpm, T0 + 10_000).ok).toBe(true)
    expect(limits.admit(rpm, T0 + 20_000).ok).toBe(true)
    expect(limits.admit(rpm, T0 + 30_000)).toEqual({ ok: false, reason: "rate", retryAfterMs: 30_000, limit: 3 })
    // The first request leaves the window at T0 + 60 s, as the answer said: one more fits, and only one.
    expect(limits.admit(rpm, T0 + MINUTE_MS - 1).ok).toBe(false)
    expect(limits.admit(rpm, T0 + MINUTE_MS).ok).toBe(true)
    expect(limits.admit(rpm, T0 + MINUTE_MS + 1)).toMatchObject({ ok: false, retryAfterMs: 10_000 - 1 })
  })

  it("a refused request does not take a place in the minute", () => {
    const limits = ledger()
    const rpm = { rpm: 1, imagesPerDay: null, images: 1 }
    expect(limits.admit(rpm, T0).ok).toBe(true)
    for (let i = 1; i < 10; i++) expect(limits.admit(rpm, T0 + i * 1000).ok).toBe(false)
    expect(limits.admit(rpm, T0 + MINUTE_MS + 1).ok).toBe(true)
  })

  it("imagesPerDay: counts n, refuses what would pass the limit, and resets at UTC midnight", () => {
    const limits = ledger()
    const quota = (images: number) => ({ rpm: null, imagesPerDay: 5, images })
    expect(limits.admit(quota(3), T0)).toEqual({ ok: true, day: Math.floor(T0 / DAY_MS), used: 3 })
    const refused = limits.admit(quota(3), T0)
    expect(refused).toEqual({
      ok: false,
      reason: "quota",
      used: 3,
      limit: 5,
      resetsAt: Date.UTC(2026, 11, 1)
    })
    expect(limits.admit(quota(2), T0).ok).toBe(true)
    expect(limits.admit(quota(1), T0).ok).toBe(false)
    expect(limits.today(T0)).toBe(5)
    expect(limits.admit(quota(5), Date.UTC(2026, 11, 1)).ok).toBe(true)
    expect(limits.today(T0)).toBe(5)
  })

  it("refunds go back to the day charged, never below zero", () => {
    const limits = ledger()
    const admitted = limits.admit({ rpm: null, imagesPerDay: 4, images: 4 }, T0)
    if (!admitted.ok) throw new Error("not admitted")
    limits.refund(admitted.day, 3)
    expect(limits.today(T0)).toBe(1)
    limits.refund(admitted.day, 10)
    expect(limits.today(T0)).toBe(0)
    limits.refund(admitted.day + 1, 1)
    expect(limits.today(T0 + DAY_MS)).toBe(0)
  })

  it("a refund of no images or of a negative count charges nothing", () => {
    const limits = ledger()
    const admitted = limits.admit({ rpm: null, imagesPerDay: 4, images: 2 }, T0)
    if (!admitted.ok) throw new Error("not admitted")
    limits.refund(admitted.day, 0)
    limits.refund(admitted.day, -3)
    expect(limits.today(T0)).toBe(2)
  })
})
