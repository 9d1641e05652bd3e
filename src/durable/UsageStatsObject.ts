import { DurableObject } from "cloudflare:workers"
import type { KeyTraffic } from "../domain/ApiKey.ts"
import type { UpstreamHealth, UsageEvent, UsageSummary, UsageWindow } from "../domain/Usage.ts"
import type { UsageStore } from "../services/WorkerBindings.ts"
import { storageSql } from "./StorageSql.ts"
import { UsageDb } from "./UsageDb.ts"

/**
 * The statistics store: one SQLite-backed Durable Object for the whole
 * gateway, called over RPC. A single object is one writer with no races
 * between an event and its rollup, and SQLite Durable Objects are on
 * Cloudflare's free plan with no resource to create before deploying
 * (the migration in wrangler.toml is enough); `wrangler dev` runs it locally.
 */
export class UsageStatsObject extends DurableObject<unknown> implements UsageStore {
  private readonly db: UsageDb

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env)
    this.db = new UsageDb(storageSql(ctx.storage))
  }

  /** A batch from one isolate, written in one transaction. */
  record(events: ReadonlyArray<UsageEvent>): void {
    this.ctx.storage.transactionSync(() => this.db.record(events))
  }

  summary(window: UsageWindow): UsageSummary {
    return this.db.summary(window)
  }

  recent(limit: number): Array<UsageEvent> {
    return this.db.recent(limit)
  }

  upstreams(): Array<UpstreamHealth> {
    return this.db.upstreams()
  }

  keys(window: UsageWindow): Array<KeyTraffic> {
    return this.db.keys(window)
  }

  prune(): { events: number; rollups: number } {
    return this.db.prune()
  }
}
