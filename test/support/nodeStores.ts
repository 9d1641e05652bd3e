import { DatabaseSync } from "node:sqlite"
import { KeyLedger } from "../../src/durable/KeyLedger.ts"
import { type Sql, UsageDb } from "../../src/durable/UsageDb.ts"
import type { KeyLimitsNamespace, UsageStoreNamespace } from "../../src/services/WorkerBindings.ts"

/**
 * The gateway's Durable Objects for tests in Node: their SQL classes on Node's own SQLite (`node:sqlite`),
 * behind the namespaces the Worker reaches them through.
 */
export const nodeSql = (): Sql => {
  const database = new DatabaseSync(":memory:")
  return { all: (query, ...params) => database.prepare(query).all(...params) as Array<never> }
}

/** The statistics object: one store, whatever the name (the Worker uses one). */
export const usageNamespace = (store: UsageDb = new UsageDb(nodeSql())): UsageStoreNamespace => ({
  getByName: () => ({
    record: async (events) => store.record(events),
    summary: async (window) => store.summary(window),
    recent: async (limit) => store.recent(limit),
    upstreams: async () => store.upstreams(),
    keys: async (window) => store.keys(window),
    prune: async () => store.prune()
  })
})

/** The limits objects: one ledger per key name, as the Worker has one object per key. */
export const limitsNamespace = (): KeyLimitsNamespace & { readonly ledgers: Map<string, KeyLedger> } => {
  const ledgers = new Map<string, KeyLedger>()
  const ledger = (name: string) => {
    const found = ledgers.get(name) ?? new KeyLedger(nodeSql())
    ledgers.set(name, found)
    return found
  }
  return {
    ledgers,
    getByName: (name) => ({
      admit: async (request) => ledger(name).admit(request, Date.now()),
      refund: async (day, images) => ledger(name).refund(day, images),
      today: async () => ledger(name).today(Date.now())
    })
  }
}
