import type { Sql } from "./UsageDb.ts"

/** A Durable Object's SQLite storage behind the `Sql` interface its SQL classes are written (and unit-tested) against. */
export const storageSql = (storage: DurableObjectStorage): Sql => ({
  all: (query, ...params) => storage.sql.exec(query, ...params).toArray() as Array<never>
})
