// The published declarations compile in a strict consumer (test/fixtures/consumer.ts),
// importing the package by its name, as a web app does.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const root = join(fileURLToPath(import.meta.url), "..", "..");

test("a strict TypeScript consumer compiles against dist/*.d.ts", async () => {
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    [tsc, "-p", join(root, "test", "fixtures", "tsconfig.json")],
    { cwd: root },
  ).catch((error) => error);
  assert.equal(`${stdout}${stderr}`, "");
});
