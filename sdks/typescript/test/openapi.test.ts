/** The checked-in API types are exactly what openapi-typescript makes of the running server's document. */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";

import { generateTypes } from "../scripts/openapi.js";
import { packageRoot, startServer } from "../scripts/server.js";

test("src/api.gen.ts matches the server's /openapi.json (run `npm run generate` after an API change)", async () => {
  const server = await startServer();
  try {
    const document = await (await fetch(`${server.url}/openapi.json`)).json();
    const fresh = await generateTypes(document);
    const checkedIn = await readFile(join(packageRoot, "src", "api.gen.ts"), "utf8");
    assert.ok(fresh === checkedIn, "src/api.gen.ts differs from the server's API: run `npm run generate` and commit the result");
  } finally {
    await server.stop();
  }
});
