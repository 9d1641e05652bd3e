import { Context } from "effect"

/**
 * The Worker's per-request `ExecutionContext`, passed by `main.ts` as the
 * handler's second argument. Only `waitUntil` is needed: work that must
 * finish after the response (recording usage statistics).
 */
export class WorkerContext extends Context.Service<WorkerContext, { waitUntil(promise: Promise<unknown>): void }>()(
  "ai-image-gateway/services/WorkerContext"
) {}
