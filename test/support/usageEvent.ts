import type { UsageEvent } from "../../src/domain/Usage.ts"

/** A usage event as the edge records a successful one-image generation; tests override what they look at. */
export const usageEvent = (overrides: Partial<UsageEvent> = {}): UsageEvent => ({
  ts: 0,
  requestId: "req_test",
  method: "POST",
  path: "/v1/images/generations",
  endpoint: "images",
  key: "API_KEYS #1",
  model: "openai/dall-e-3",
  upstream: "ai-sdk",
  status: 200,
  latencyMs: 1000,
  attempts: 1,
  images: 1,
  failedImages: 0,
  error: null,
  stream: false,
  prompt: null,
  failovers: 0,
  ...overrides
})
