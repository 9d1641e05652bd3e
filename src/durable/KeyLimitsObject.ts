import { DurableObject } from "cloudflare:workers"
import type { Admission, KeyLimitsRequest } from "../domain/ApiKey.ts"
import type { KeyLimitsStore } from "../services/WorkerBindings.ts"
import { KeyLedger } from "./KeyLedger.ts"
import { storageSql } from "./StorageSql.ts"

/**
 * The limits of one named key: one SQLite-backed Durable Object per key (`getByName(key name)`), so
 * counting is exact across isolates and locations, and keys never wait for each other. Only keys with
 * `rpm` or `imagesPerDay` reach it. Time is the object's own clock: one clock per key, wherever the
 * requests come from.
 */
export class KeyLimitsObject extends DurableObject<unknown> implements KeyLimitsStore {
  private readonly ledger: KeyLedger

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env)
    this.ledger = new KeyLedger(storageSql(ctx.storage))
  }

  admit(request: KeyLimitsRequest): Admission {
    return this.ledger.admit(request, Date.now())
  }

  refund(day: number, images: number): void {
    this.ledger.refund(day, images)
  }

  today(): number {
    return this.ledger.today(Date.now())
  }
}
