import { cloudflareTest } from "@cloudflare/vitest-plugin"
import { defineConfig } from "vitest/config"

/**
 * Four projects, all in `npm test`:
 * - unit: pure logic and services in Node, with @effect/vitest and TestClock;
 * - workers: the Worker itself inside workerd, against the fake upstream (workers-cache: the same with
 *   the cache on and LOG_PROMPTS=true);
 * - e2e: `wrangler dev` started as `npm start` would, driven by the official `openai` client, and the
 *   status cockpit in Debian's Chromium driven by playwright-core.
 */
/** The Worker inside workerd, configured as production with two keys, against the fake upstream. */
const workersProject = (name: string, include: Array<string>, vars: Record<string, string>) => ({
  plugins: [
    cloudflareTest(({ inject }) => ({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        bindings: {
          ENVIRONMENT: "production",
          API_KEYS: "test-key,second-key",
          UPSTREAM_URL: inject("fakeUpstreamUrl"),
          UPSTREAM_TIMEOUT_MS: "1500",
          UPSTREAM_BACKOFF_MS: "20",
          UPSTREAM_BACKOFF_MAX_MS: "200",
          ENABLE_LOCAL_MODEL: "true",
          KEEPALIVE_MS: "200",
          LOG_LEVEL: "Warn",
          // Tests share one isolate and fail the fake upstream on purpose: its circuit must not open
          // between them. The breaker has its own tests (unit, TestClock; workerd, an instance of its own).
          CIRCUIT_FAILURES: "1000000",
          // Two OpenAI-compatible instances on the fake, for the openai kind and fallbacks.
          UPSTREAMS: JSON.stringify([
            { id: "fake-openai", kind: "openai", baseUrl: `${inject("fakeUpstreamUrl")}/v1`, apiKey: "FAKE_OPENAI_KEY" },
            { id: "fake-backup", kind: "openai", baseUrl: `${inject("fakeUpstreamUrl")}/v1`, apiKey: "FAKE_OPENAI_KEY" },
            { id: "wrong-key", kind: "openai", baseUrl: `${inject("fakeUpstreamUrl")}/v1`, apiKey: "WRONG_OPENAI_KEY" },
            // No timeout that matters: a held call there ends only when the test releases it or the gateway cancels it.
            {
              id: "fake-patient",
              kind: "openai",
              baseUrl: `${inject("fakeUpstreamUrl")}/v1`,
              apiKey: "FAKE_OPENAI_KEY",
              timeoutMs: 120_000
            }
          ]),
          FAKE_OPENAI_KEY: "fake-openai-key",
          WRONG_OPENAI_KEY: "not-the-key",
          MODELS: JSON.stringify([
            {
              id: "fake/gpt-image",
              upstream: "fake-openai",
              upstreamModelId: "gpt-image-1",
              maxN: 4,
              options: { supports: ["quality"] },
              edits: true,
              masks: true,
              variations: true
            },
            { id: "fake/primary", upstream: "fake-openai", upstreamModelId: "primary-model", fallbacks: ["fake/backup"] },
            { id: "fake/backup", upstream: "fake-backup", upstreamModelId: "backup-model" },
            { id: "fake/misconfigured", upstream: "wrong-key", upstreamModelId: "primary-model", fallbacks: ["fake/backup"] },
            { id: "fake/patient", upstream: "fake-patient", upstreamModelId: "patient-model" }
          ]),
          ...vars
        }
      }
    }))
  ],
  test: { name, include, globalSetup: ["test/support/globalSetup.ts"], testTimeout: 20_000 }
})

/** The two workerd projects; `npm run mutants:http` runs them beside the unit project. */
export const workersProjects = [
  workersProject("workers", ["test/workers/**/*.test.ts"], {}),
  workersProject("workers-cache", ["test/workers-cache/**/*.test.ts"], { CACHE_TTL_SECONDS: "3600", LOG_PROMPTS: "true" })
]

export default defineConfig({
  test: {
    reporters: ["default", "./test/support/summaryReporter.ts"],
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/support/globalSetup.ts"]
        }
      },
      ...workersProjects,
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/e2e/globalSetup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000
        }
      }
    ]
  }
})
