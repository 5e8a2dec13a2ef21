// The project's Python (.venv, with moto, botocore and jsonschema): created by
// scripts/python-env.sh on a machine that does not have it yet.

import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");
export const PYTHON = join(REPO_ROOT, ".venv", "bin", "python");

/** The venv's python, made first if it is missing. */
export function python() {
  if (!existsSync(PYTHON)) {
    const made = spawnSync(join(REPO_ROOT, "scripts", "python-env.sh"), { stdio: "inherit" });
    if (made.status !== 0) throw new Error("scripts/python-env.sh failed");
  }
  return PYTHON;
}

/** Runs `code` with `input` as JSON on stdin; answers its stdout parsed as JSON. */
export function runPython(code, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(python(), ["-c", code], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (status) => {
      if (status !== 0) return reject(new Error(`python exited ${status}: ${stderr}`));
      try {
        resolve(JSON.parse(stdout));
      } catch (error) {
        reject(new Error(`python printed no JSON: ${stdout}\n${stderr}`));
      }
    });
    child.stdin.end(JSON.stringify(input));
  });
}

const VALIDATE = `
import json, sys
from jsonschema import Draft202012Validator
request = json.load(sys.stdin)
with open(request["schema"]) as f:
    schema = json.load(f)
validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
print(json.dumps([[e.message for e in validator.iter_errors(doc)] for doc in request["documents"]]))
`;

/** Each document's errors against docs/schemas/envelope.schema.json ([] when valid). */
export function schemaErrors(documents) {
  return runPython(VALIDATE, {
    schema: join(REPO_ROOT, "docs", "schemas", "envelope.schema.json"),
    documents,
  });
}
