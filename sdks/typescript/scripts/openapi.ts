/**
 * Turns the server's OpenAPI document into the checked-in TypeScript types (`src/api.gen.ts`).
 *
 * One function, used by `npm run generate` and by the test that fails when the checked-in file drifts from
 * what the running server serves: both produce the file the same way, so the comparison is exact.
 */
import openapiTS, { astToString } from "openapi-typescript";

/** The header every generated file starts with. */
const HEADER = `/**
 * Types of Offload's HTTP API, generated from the server's \`/openapi.json\` by openapi-typescript.
 * Do not edit: run \`npm run generate\` (with OFFLOAD_BIN pointing at the server binary) after an API change.
 */

`;

/** The generated module's source for an OpenAPI document (given as parsed JSON). */
export async function generateTypes(document: unknown): Promise<string> {
  // openapi-typescript accepts a parsed document; the cast names the shape it expects.
  const ast = await openapiTS(document as Parameters<typeof openapiTS>[0], { alphabetize: true });
  return HEADER + astToString(ast);
}
