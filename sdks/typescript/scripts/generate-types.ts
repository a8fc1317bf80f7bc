/**
 * `npm run generate`: starts the server binary, fetches its `/openapi.json` and rewrites `src/api.gen.ts`.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

import { generateTypes } from "./openapi.js";
import { packageRoot, startServer } from "./server.js";

const server = await startServer();
try {
  const document = await (await fetch(`${server.url}/openapi.json`)).json();
  const target = join(packageRoot, "src", "api.gen.ts");
  await writeFile(target, await generateTypes(document));
  console.log(`wrote ${target}`);
} finally {
  await server.stop();
}
