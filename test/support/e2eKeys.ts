/**
 * The named keys of the e2e gateway (KEYS, beside the development key of `npm start`): an admin and a
 * user key with an allow-list and a daily quota, for the cockpit's Keys panel and a user key's view.
 */
export const E2E_ADMIN_KEY = "sk-e2e-admin-5b1f0c9a7d"
export const E2E_GUEST_KEY = "sk-e2e-guest-2c8e4f6b1a"

export const E2E_KEYS = [
  { name: "team-admin", key: E2E_ADMIN_KEY, role: "admin" },
  { name: "guest", key: E2E_GUEST_KEY, role: "user", models: ["local/preview"], imagesPerDay: 10 }
]
