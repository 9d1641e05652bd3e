import { type Admission, type KeyLimitsRequest, MINUTE_MS, quotaResetsAt, utcDay } from "../domain/ApiKey.ts"
import type { Sql } from "./UsageDb.ts"

/** Days of counts kept: today's is the one that matters; a few more for the record. */
const KEEP_DAYS = 7

/**
 * One key's limits, kept by that key's Durable Object (`KeyLimitsObject`): requests in the last minute
 * and images charged per UTC day. The object handles one call at a time, so an admission and its charge
 * are one step: two requests racing for the last image of a quota cannot both get it.
 *
 * The minute's requests live in memory (an object evicted after a minute without calls has nothing to
 * forget); the daily counts in SQLite, so a quota survives eviction and restarts.
 */
export class KeyLedger {
  /** Admission times of the last minute, oldest first. */
  private readonly recent: Array<number> = []

  constructor(private readonly sql: Sql) {
    sql.all("CREATE TABLE IF NOT EXISTS quota (day INTEGER PRIMARY KEY, images INTEGER NOT NULL)")
  }

  /** Admits a request (rpm first, then the images against today's quota) and charges it, or says why not. */
  admit(request: KeyLimitsRequest, now: number): Admission {
    const windowStart = now - MINUTE_MS
    while (this.recent.length > 0 && this.recent[0]! <= windowStart) this.recent.shift()
    if (request.rpm !== null && this.recent.length >= request.rpm) {
      // The oldest of the minute's requests leaves the window first: then one more fits.
      const oldest = this.recent[this.recent.length - request.rpm]!
      return { ok: false, reason: "rate", retryAfterMs: oldest + MINUTE_MS - now, limit: request.rpm }
    }
    const day = utcDay(now)
    const used = this.used(day)
    if (request.imagesPerDay !== null) {
      if (used + request.images > request.imagesPerDay) {
        return { ok: false, reason: "quota", used, limit: request.imagesPerDay, resetsAt: quotaResetsAt(now) }
      }
    }
    this.recent.push(now)
    // Every admitted request's images are counted, with a quota or not, so a quota added later starts from today's truth.
    this.sql.all(
      "INSERT INTO quota (day, images) VALUES (?, ?) ON CONFLICT (day) DO UPDATE SET images = images + excluded.images",
      day,
      request.images
    )
    this.sql.all("DELETE FROM quota WHERE day < ?", day - KEEP_DAYS)
    return { ok: true, day, used: used + request.images }
  }

  /** Gives back images charged to `day` that were not served (failed upstream, or never reached). */
  refund(day: number, images: number): void {
    if (images <= 0) return
    this.sql.all("UPDATE quota SET images = MAX(0, images - ?) WHERE day = ?", images, day)
  }

  /** Images charged to the UTC day of `now`. */
  today(now: number): number {
    return this.used(utcDay(now))
  }

  private used(day: number): number {
    return this.sql.all<{ images: number }>("SELECT images FROM quota WHERE day = ?", day)[0]?.images ?? 0
  }
}
